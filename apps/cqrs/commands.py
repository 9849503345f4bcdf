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
    transaction: every row lock a command takes is therefore taken before the log's append lock,
    so commands that call other commands cannot deadlock on it, and the append lock is held only
    for the insert and the commit.

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
