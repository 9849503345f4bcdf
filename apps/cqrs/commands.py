import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import transaction

from apps.cqrs.context import current_scope, scope
from apps.cqrs.log import append_pending

P = ParamSpec("P")
R = TypeVar("R")


def command(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Make a function a command service: it runs in one transaction on the write database, and
    the events it records carry `name` and the `actor` keyword argument it is called with.

    Events are appended to the log when the outermost command finishes, still inside its
    transaction, after every row lock the command takes: versions are numbered while the
    aggregates' rows are locked (apps/cqrs/log.py), and the log's ROW EXCLUSIVE lock, which
    readers look for when they see a gap (apps/cqrs/horizon.py), is held for as short a time
    as the transaction allows.

    A command called by another joins its transaction without a savepoint: its events wait in
    the outer command's list, so if it fails the outer command must fail too; catching the
    error and going on would leave the transaction unusable rather than commit its events.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            outermost = not (current_scope() and current_scope().command)
            with (
                scope(command=name, actor=kwargs.get("actor")) as meta,
                transaction.atomic(savepoint=outermost),
            ):
                result = fn(*args, **kwargs)
                if outermost:
                    append_pending(meta)
                return result

        run.command_name = name  # type: ignore[attr-defined]
        return run

    return decorate
