import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import transaction

from apps.cqrs.context import current_scope, outside_commands, scope
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
            if not outermost and not transaction.get_connection().in_atomic_block:
                # Inside another command's scope but not its transaction: an on_commit hook
                # of that command. Its events would wait for an append that has happened.
                raise RuntimeError(
                    f"{name} runs after the command that called it committed: run it through "
                    "apps.cqrs.commands.after_commit."
                )
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


def after_commit(fn: Callable[[], object]) -> None:
    """Run `fn` once the running command's transaction has committed (never if it rolls back),
    as a step of its own: commands it calls are outermost commands, with their own transactions
    and events, under the same correlation id. For calls to the outside world that must not
    happen inside a transaction that can still roll back (refunds). A failure is logged, and
    whatever `fn` did not finish is left to its recovery."""

    def run() -> None:
        with outside_commands():
            fn()

    transaction.on_commit(run, robust=True)
