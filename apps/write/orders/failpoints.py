"""Named places in the payment flow where the fault tests kill the process, as a crash or a
deploy would: `FAILPOINT=pay:after-gateway` makes `failpoint("pay:after-gateway")` end the
process on the spot, without unwinding, committing or rolling back anything
(tests/faults/test_payment_crashes.py). Unset, as in production, it costs a dictionary lookup."""

import os

EXIT_CODE = 86


def failpoint(name: str) -> None:
    if os.environ.get("FAILPOINT") == name:
        os._exit(EXIT_CODE)
