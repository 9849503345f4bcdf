"""The base class of domain events. Each write app declares its events in its own events.py."""

import dataclasses
from typing import Any, ClassVar


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event:
    """A business fact, named in the past tense (BookAdded, PriceChanged).

    Subclasses set `aggregate_type` and `aggregate_id_field` (the field holding the aggregate's
    id); `event_type` defaults to the class name. Bump `schema_version` when the payload's shape
    changes, so projectors can read old and new events alike.
    """

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    aggregate_type: ClassVar[str]
    aggregate_id_field: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            cls.event_type = cls.__name__

    @property
    def aggregate_id(self) -> str:
        return str(getattr(self, self.aggregate_id_field))

    def payload(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
