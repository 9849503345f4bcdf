"""Who and what a recorded event is traced to: command, actor, correlation and causation ids.

A request (CorrelationIdMiddleware), a task or a management command opens a `scope`; each
command service opens a nested one through `@command` (apps/cqrs/commands.py). Every event is
stamped with the scope it was recorded in, so the log answers "which command, by whom, as part of
what" for every change.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from apps.cqrs.actors import SystemActor

if TYPE_CHECKING:
    from apps.cqrs.events import Event


@dataclass(frozen=True)
class Scope:
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    command: str = ""
    actor_id: int | None = None
    actor: str = "system"
    # Positions recorded in this scope and the scopes nested in it (shared, hence mutable).
    positions: list[int] = field(default_factory=list, compare=False)
    # Events recorded by the running command and the commands it calls, with the scope each was
    # recorded in; the outermost command appends them to the log just before it commits.
    pending: list[tuple["Event", "Scope"]] = field(default_factory=list, compare=False)

    @property
    def last_position(self) -> int | None:
        """The position of the last event recorded in this scope, for read-your-writes."""
        return max(self.positions, default=None)


_current: ContextVar[Scope | None] = ContextVar("cqrs_scope", default=None)


def current_scope() -> Scope | None:
    """The innermost open scope, or None outside any request, task or command."""
    return _current.get()


@contextmanager
def scope(
    *,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
    command: str | None = None,
    actor: Any = None,
) -> Iterator[Scope]:
    """Open a scope; unset fields are inherited from the enclosing one.

    `actor` is a Django user, a named `SystemActor` (a process manager, a timer), or None for
    commands whose services check no rights (catalog seeding, sign-up).
    """
    parent = _current.get()
    if parent is None:
        parent = Scope(correlation_id=correlation_id or uuid.uuid4())
    changes: dict[str, Any] = {}
    if correlation_id is not None:
        changes["correlation_id"] = correlation_id
    if causation_id is not None:
        changes["causation_id"] = causation_id
    if command is not None:
        changes["command"] = command
        if actor is not None and getattr(actor, "is_authenticated", False):
            changes.update(actor_id=actor.pk, actor=actor.get_username())
        elif isinstance(actor, SystemActor):
            changes.update(actor_id=None, actor=actor.get_username())
        else:
            changes.update(actor_id=None, actor="system")
    starts_command = command is not None and not parent.command
    opened = replace(
        parent,
        **changes,
        positions=parent.positions,
        pending=[] if starts_command else parent.pending,
    )
    token = _current.set(opened)
    try:
        yield opened
    finally:
        _current.reset(token)


@contextmanager
def outside_commands() -> Iterator[Scope]:
    """The current scope, but outside any command: for work that runs after a command has
    committed (apps.cqrs.commands.after_commit), whose commands are outermost ones."""
    current = _current.get() or Scope(correlation_id=uuid.uuid4())
    outside = replace(current, command="", actor_id=None, actor="system", pending=[])
    token = _current.set(outside)
    try:
        yield outside
    finally:
        _current.reset(token)
