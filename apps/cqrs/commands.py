import functools
import time
from collections.abc import Callable
from contextlib import nullcontext
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

from django.db import transaction

from apps.cqrs import metrics
from apps.cqrs.context import current_scope, outside_commands, scope
from apps.cqrs.log import append_pending

P = ParamSpec("P")
R = TypeVar("R")
# The transaction block of the outermost command running on this thread, if any.
_running_command: ContextVar[transaction.Atomic | None] = ContextVar(
    "cqrs_running_command", default=None
)


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
            running = _running_command.get()
            # A command joins the one that called it while that one's transaction is open. Code
            # that runs once it has committed (an on_commit hook: a wake-up running a
            # subscriber eagerly, a refund) is still in its scope but not in its transaction:
            # its commands are outermost ones, with events of their own.
            joins = running is not None and running in transaction.get_connection().atomic_blocks
            outer = current_scope()
            finished = not joins and bool(outer and outer.command)
            block = transaction.atomic(savepoint=not joins)
            started, outcome = time.perf_counter(), "ok"
            try:
                with (
                    outside_commands() if finished else nullcontext(),
                    scope(command=name, actor=kwargs.get("actor")) as meta,
                    block,
                ):
                    token = None if joins else _running_command.set(block)
                    try:
                        result = fn(*args, **kwargs)
                        if not joins:
                            append_pending(meta)
                        return result
                    finally:
                        if token is not None:
                            _running_command.reset(token)
            except BaseException as exc:
                outcome = type(exc).__name__
                raise
            finally:
                metrics.commands.labels(name, outcome).inc()
                metrics.command_duration.labels(name).observe(time.perf_counter() - started)

        run.command_name = name  # type: ignore[attr-defined]
        return run

    return decorate


def after_commit(fn: Callable[[], object]) -> None:
    """Run `fn` once the running command's transaction has committed (never if it rolls back):
    commands it calls are outermost ones, with their own transactions and events, under the same
    correlation id. For calls to the outside world that must not happen inside a transaction
    that can still roll back (refunds). A failure is logged, and whatever `fn` did not finish is
    left to its recovery."""
    transaction.on_commit(fn, robust=True)
