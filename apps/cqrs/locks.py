"""PostgreSQL session advisory locks: one process at a time at a piece of work that spans many
transactions (a blue-green build, a slot's backlog).

A session lock dies with its connection, so a killed worker leaves nothing behind for anyone
to clear, which a lock in Redis with a time-out could not promise for work that may last
minutes. These locks never guard data: the checkpoint row locks do that. They only keep two
processes from doing one job while other jobs wait.
"""

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from django.db import DatabaseError, connections

# The first of the two keys, one per kind of work; the second is hashtext(name).
BUILD = 0x43515253  # "CQRS"
SLOT = 0x43515254


@contextmanager
def advisory_lock(*, using: str, kind: int, name: str, wait: bool = False) -> Iterator[bool]:
    """Hold the lock (`kind`, `name`) on the `using` database for the block; yields whether it
    is held. Without `wait`, a lock another session holds yields False at once. On a database
    other than PostgreSQL (the embedded default: one process, eager tasks) it yields True."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [kind, name])
            held = True
        else:
            cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [kind, name])
            held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            with suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [kind, name])
