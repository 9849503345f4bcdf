"""The payment gateway interface, and the built-in test gateway.

PAYMENT_GATEWAY names the class to use. Every call carries an idempotency key: the gateway moves
money at most once per key, and answers a repeated key with its first answer, as real providers
do (Stripe's Idempotency-Key, Adyen's idempotency-key). `outcome(key)` tells what a call with a
key did, or None when the gateway never received one: that is how recovery learns what happened
to a call whose caller died (apps/write/orders/services.py, docs/payments.md).

The test gateway decides by card number, like the test cards of real payment providers, so that
every path can be exercised without a network, and keeps a ledger of every call.
"""

import json
import threading
import uuid
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Protocol, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

from apps.cqrs.errors import PaymentRefused


@dataclass(frozen=True)
class ChargeResult:
    approved: bool
    reference: str = ""
    decline_reason: str = ""


class CardDeclined(PaymentRefused):
    """The gateway refused the card; nothing was charged."""

    def __init__(self, reason: str):
        super().__init__({"card_number": f"{reason} Nothing was charged."})


class PaymentGateway(Protocol):
    def charge(
        self, *, key: str, amount: Decimal, card_number: str, reference: str
    ) -> ChargeResult: ...

    # Authorize holds the amount on the card; capture takes it; void lets the hold go.
    def authorize(
        self, *, key: str, amount: Decimal, card_number: str, reference: str
    ) -> ChargeResult: ...

    def capture(self, *, key: str, amount: Decimal, authorization: str) -> str: ...

    def void(self, *, key: str, authorization: str) -> None: ...

    def refund(self, *, key: str, amount: Decimal, payment_reference: str) -> str: ...

    def outcome(self, *, key: str) -> ChargeResult | None: ...


class Ledger:
    """Every call the test gateway was sent, and the first answer to each key. In Redis when the
    shop has one (so that every process, and a test, sees the same ledger, and a killed process
    loses nothing), else in this process's memory."""

    PREFIX = "test-gateway"

    def __init__(self) -> None:
        url = getattr(settings, "PAYMENT_TEST_LEDGER_URL", "")
        self._redis = None
        if url:
            import redis

            self._redis = redis.Redis.from_url(url)
        self._memory: dict[str, str] = {}
        self._entries: list[str] = []
        self._lock = threading.Lock()

    def once(self, key: str, operation: str, answer: dict) -> dict:
        """Record `answer` as the outcome of `key` unless the key has one; return the one kept."""
        entry = json.dumps({"key": key, "operation": operation, **answer}, default=str)
        name = f"{self.PREFIX}:key:{key}"
        if self._redis is not None:
            if self._redis.set(name, entry, nx=True):
                self._redis.rpush(f"{self.PREFIX}:ledger", entry)
            # Set just above, or before: the key never expires.
            return json.loads(cast(bytes, self._redis.get(name)))
        with self._lock:
            if name not in self._memory:
                self._memory[name] = entry
                self._entries.append(entry)
            return json.loads(self._memory[name])

    def get(self, key: str) -> dict | None:
        name = f"{self.PREFIX}:key:{key}"
        raw = self._redis.get(name) if self._redis is not None else self._memory.get(name)
        return json.loads(raw) if raw else None

    def entries(self) -> list[dict]:
        """Every call that moved money or a hold, first answer per key, in order."""
        if self._redis is not None:
            raw = self._redis.lrange(f"{self.PREFIX}:ledger", 0, -1)
        else:
            raw = list(self._entries)
        return [json.loads(entry) for entry in raw]

    def clear(self) -> None:
        if self._redis is not None:
            names = list(self._redis.scan_iter(f"{self.PREFIX}:*"))
            if names:
                self._redis.delete(*names)
        self._memory.clear()
        self._entries.clear()


_ledger: Ledger | None = None


def ledger() -> Ledger:
    global _ledger
    if _ledger is None:
        _ledger = Ledger()
    return _ledger


class TestGateway:
    """4242 4242 4242 4242 approves; 4000 0000 0000 0002 is declined; 4000 0000 0000 9995 is
    declined for insufficient funds. Any other number that passes the Luhn check approves.
    Idempotent per key, with a ledger of what it did (`ledger()`)."""

    DECLINES = {
        "4000000000000002": "The card was declined.",
        "4000000000009995": "Insufficient funds.",
    }

    def charge(self, *, key: str, amount: Decimal, card_number: str, reference: str):
        return self._decide("charge", key, amount, card_number, reference)

    def authorize(self, *, key: str, amount: Decimal, card_number: str, reference: str):
        return self._decide("authorize", key, amount, card_number, reference)

    def capture(self, *, key: str, amount: Decimal, authorization: str) -> str:
        answer = {"amount": amount, "approved": True, "authorization": authorization}
        return ledger().once(key, "capture", {**answer, "reference": _reference("ch")})["reference"]

    def void(self, *, key: str, authorization: str) -> None:
        ledger().once(key, "void", {"approved": True, "authorization": authorization})

    def refund(self, *, key: str, amount: Decimal, payment_reference: str) -> str:
        answer = {"amount": amount, "approved": True, "payment_reference": payment_reference}
        return ledger().once(key, "refund", {**answer, "reference": _reference("re")})["reference"]

    def outcome(self, *, key: str) -> ChargeResult | None:
        entry = ledger().get(key)
        if entry is None:
            return None
        return ChargeResult(
            approved=entry["approved"],
            reference=entry.get("reference", ""),
            decline_reason=entry.get("decline_reason", ""),
        )

    def _decide(self, operation, key, amount, card_number, reference) -> ChargeResult:
        if card_number in self.DECLINES:
            result = ChargeResult(approved=False, decline_reason=self.DECLINES[card_number])
        else:
            prefix = "ch" if operation == "charge" else "au"
            result = ChargeResult(approved=True, reference=_reference(prefix))
        answer = {**asdict(result), "amount": amount, "for": reference}
        entry = ledger().once(key, operation, answer)
        return ChargeResult(entry["approved"], entry["reference"], entry["decline_reason"])


def _reference(prefix: str) -> str:
    return f"test_{prefix}_{uuid.uuid4().hex[:16]}"


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
