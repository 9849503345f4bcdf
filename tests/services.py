"""`make test` calls this first: it says plainly what is missing when PostgreSQL, Redis or
RabbitMQ is not reachable, instead of letting the suite fail on its first connection."""

import os
import sys

import psycopg
import redis

HOW = """
The tests need PostgreSQL, Redis and RabbitMQ on loopback. Start them with one of:
  - Debian/Ubuntu with the packages installed:
      pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
      redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
      rabbitmq-server -detached
  - Docker:  docker compose up -d postgres redis-broker rabbitmq
    (then TEST_DATABASE_URL=postgres://bookstore:bookstore@127.0.0.1:5432/bookstore make test)
Or point TEST_DATABASE_URL / TEST_REDIS_URL at servers you have.
"""


def main() -> int:
    problems = []
    database_url = os.environ["DATABASE_URL"]
    try:
        # Connect to the maintenance database: the test database does not exist yet.
        info = psycopg.conninfo.conninfo_to_dict(database_url)
        info["dbname"] = "postgres"
        psycopg.connect(**info, connect_timeout=3).close()
    except psycopg.Error as exc:
        problems.append(f"PostgreSQL at {database_url}: {exc}".strip())
    redis_url = os.environ["REDIS_URL"]
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis at {redis_url}: {exc}")
    broker_url = os.environ.get(
        "INTEGRATION_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"
    )
    try:
        from kombu import Connection

        with Connection(broker_url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        problems.append(f"RabbitMQ at {broker_url}: {exc}")
    if problems:
        print("Cannot run the tests:\n  " + "\n  ".join(problems) + "\n" + HOW, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
