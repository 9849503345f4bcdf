"""One payment step in a process of its own, for tests/faults/test_payment_crashes.py: the
FAILPOINT in its environment names where it dies (apps/write/orders/failpoints.py).

    python -m tests.faults.payment_step pay|checkout|cancel CUSTOMER_ID ORDER_OR_BOOK_ID
"""

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402

from apps.cqrs.context import scope  # noqa: E402
from apps.write.orders import services  # noqa: E402

APPROVE = "4242424242424242"


def main(flow: str, customer_id: int, target: int) -> None:
    customer = get_user_model().objects.get(pk=customer_id)
    with scope():
        if flow == "pay":
            services.order_pay(actor=customer, order_id=target, card_number=APPROVE)
        elif flow == "checkout":
            services.order_checkout(
                actor=customer,
                lines=[{"book_id": target, "quantity": 1}],
                shipping_address="1 Main St",
                card_number=APPROVE,
            )
        elif flow == "cancel":
            services.order_cancel(actor=customer, order_id=target, reason="Changed my mind")
        else:
            raise SystemExit(f"unknown flow {flow!r}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
