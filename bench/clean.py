"""Drop what the benchmarks leave behind (`make bench-clean`): their PostgreSQL databases and
their Redis databases (5 to 9).

A benchmark keeps its database after a run, to be looked at. Left there, a million books' worth
slows what comes next: the replica test (tests/replica.py) copies every database of the server,
and `make bench` left 990,515 cache entries in Redis.
"""

import psycopg
import redis

from bench.run import ADMIN_DSN, say

DATABASES = (
    "bookstore_bench",
    "bookstore_catalog",
    "bookstore_cost",
    "bookstore_profile",
    "bookstore_rebuild",
    "bookstore_replicas",
    "bookstore_scaling",
    "bookstore_streams",
    "bookstore_task_cost",
    "bookstore_waits",
)
REDIS_DATABASES = range(5, 10)


def main() -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        present = conn.execute(
            "SELECT datname, pg_database_size(datname) FROM pg_database WHERE datname = ANY(%s)",
            [list(DATABASES)],
        ).fetchall()
        for name, size in present:
            say(f"dropping database {name} ({size / 1e6:,.0f} MB)")
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
    for db in REDIS_DATABASES:
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
        if keys := client.dbsize():
            say(f"emptying Redis database {db} ({keys:,} keys)")
            client.flushdb()
    say("the benchmarks' databases are gone")


if __name__ == "__main__":
    main()
