"""How a command's refusal reaches a user: one table, read by the API, the pages and the admin.

Command services raise few kinds of error, all from Django or this kernel:

| kind             | raised as                                  | API | page              |
|------------------|--------------------------------------------|-----|-------------------|
| validation       | django ValidationError (field messages)    | 400 | errors on the form|
| payment declined | CardDeclined (a PaymentRefused)            | 402 | error on the form |
| not found        | ObjectDoesNotExist (missing, or not yours) | 404 | 404 page          |
| forbidden        | django PermissionDenied                    | 403 | 403 page          |
| conflict         | Conflict (the state refuses it)            | 409 | error on the form |
| unavailable      | Unavailable (a service it needs is away)   | 503 | error on the form |

The admin shows each as an error message.

A database constraint that refuses a write (IntegrityError) is a validation error with the
message the constraint declares (`violation_error_message`, the service's own words), or a
conflict when it declares none: users never read a constraint's name.
"""

from dataclasses import dataclass, field

from django.apps import apps
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import IntegrityError
from django.db.models import BaseConstraint

from apps.cqrs.exceptions import Conflict


class Unavailable(Exception):
    """A service the command needs (the payment gateway, a broker) is away; nothing changed."""


class PaymentRefused(ValidationError):
    """Base of the refusals a payment gateway gives (CardDeclined): a 402, with field
    messages."""


NON_FIELD = "detail"


@dataclass(frozen=True)
class Refusal:
    kind: str
    status: int
    message: str  # one line, for a page's or the admin's message
    fields: dict[str, list[str]] = field(default_factory=dict)  # field -> messages, if any


def refusal(exc: BaseException) -> Refusal | None:
    """The refusal `exc` stands for, or None for an error that is not one (a bug: 500)."""
    if isinstance(exc, IntegrityError):
        exc = _constraint_refusal(exc)
    if isinstance(exc, ValidationError):
        kind, status = (
            ("payment declined", 402) if isinstance(exc, PaymentRefused) else ("validation", 400)
        )
        if hasattr(exc, "error_dict"):
            fields = {
                NON_FIELD if name == "__all__" else name: messages
                for name, messages in exc.message_dict.items()
            }
        else:
            fields = {NON_FIELD: exc.messages}
        return Refusal(kind, status, " ".join(exc.messages), fields)
    if isinstance(exc, ObjectDoesNotExist):
        return Refusal("not found", 404, str(exc) or "Not found.")
    if isinstance(exc, PermissionDenied):
        return Refusal("forbidden", 403, str(exc) or "You may not do this.")
    if isinstance(exc, Conflict):
        return Refusal("conflict", 409, str(exc))
    if isinstance(exc, Unavailable):
        return Refusal("unavailable", 503, str(exc) or "Briefly unavailable; try again.")
    return None


def _constraint_refusal(exc: IntegrityError) -> Exception:
    name = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
    constraint = _constraints().get(name) if isinstance(name, str) else None
    if constraint is not None and constraint.violation_error_message != (
        BaseConstraint.default_violation_error_message
    ):
        return ValidationError(constraint.get_violation_error_message())
    return Conflict("Something changed meanwhile and refused this; look again and retry.")


def _constraints() -> dict[str, BaseConstraint]:
    return {
        constraint.name: constraint
        for model in apps.get_models()
        for constraint in model._meta.constraints
    }
