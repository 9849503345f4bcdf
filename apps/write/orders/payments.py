"""The payment gateway interface, and the built-in test gateway.

PAYMENT_GATEWAY names the class to use. The test gateway decides by card number, like the test
cards of real payment providers, so that every path can be exercised without a network.
"""

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class ChargeResult:
    approved: bool
    reference: str = ""
    decline_reason: str = ""


class CardDeclined(ValidationError):
    """The gateway refused the card; nothing was charged."""

    def __init__(self, reason: str):
        super().__init__({"card_number": f"{reason} Nothing was charged."})


class PaymentGateway(Protocol):
    def charge(self, *, amount: Decimal, card_number: str, reference: str) -> ChargeResult: ...

    # Authorize holds the amount on the card; capture takes it; void lets the hold go.
    def authorize(self, *, amount: Decimal, card_number: str, reference: str) -> ChargeResult: ...

    def capture(self, *, amount: Decimal, authorization: str) -> str: ...

    def void(self, *, authorization: str) -> None: ...

    def refund(self, *, amount: Decimal, payment_reference: str) -> str: ...


class TestGateway:
    """4242 4242 4242 4242 approves; 4000 0000 0000 0002 is declined; 4000 0000 0000 9995 is
    declined for insufficient funds. Any other number that passes the Luhn check approves."""

    DECLINES = {
        "4000000000000002": "The card was declined.",
        "4000000000009995": "Insufficient funds.",
    }

    def charge(self, *, amount: Decimal, card_number: str, reference: str) -> ChargeResult:
        return self._decide(card_number, prefix="test_ch")

    def authorize(self, *, amount: Decimal, card_number: str, reference: str) -> ChargeResult:
        return self._decide(card_number, prefix="test_au")

    def capture(self, *, amount: Decimal, authorization: str) -> str:
        return f"test_ch_{uuid.uuid4().hex[:16]}"

    def void(self, *, authorization: str) -> None:
        pass

    def _decide(self, card_number: str, *, prefix: str) -> ChargeResult:
        if card_number in self.DECLINES:
            return ChargeResult(approved=False, decline_reason=self.DECLINES[card_number])
        return ChargeResult(approved=True, reference=f"{prefix}_{uuid.uuid4().hex[:16]}")

    def refund(self, *, amount: Decimal, payment_reference: str) -> str:
        return f"test_re_{uuid.uuid4().hex[:16]}"


def clean_card_number(card_number: str) -> str:
    number = card_number.replace(" ", "").replace("-", "")
    if not luhn_valid(number):
        raise ValidationError({"card_number": "Enter a valid card number."})
    return number


def luhn_valid(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, digit in enumerate(reversed(number)):
        d = int(digit) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def gateway() -> PaymentGateway:
    return import_string(
        getattr(settings, "PAYMENT_GATEWAY", "apps.write.orders.payments.TestGateway")
    )()
