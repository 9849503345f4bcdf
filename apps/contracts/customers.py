"""What customers' accounts say happened."""

import dataclasses

from apps.cqrs.events import Event


@dataclasses.dataclass(frozen=True, kw_only=True)
class CustomerEvent(Event, abstract=True):
    aggregate_type = "customer"
    aggregate_id_field = "customer_id"
    customer_id: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class CustomerSignedUp(CustomerEvent):
    username: str
    full_name: str
    shipping_address: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class CustomerProfileChanged(CustomerEvent):
    full_name: str
    shipping_address: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class CustomerEmailChanged(CustomerEvent):
    """The account's e-mail address changed. The address itself stays out of the log, which
    keeps everything for ever; it is in the account."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CustomerPasswordChanged(CustomerEvent):
    """The customer chose a new password (the password itself is never recorded)."""
