"""A real PostgreSQL streaming replica of the test server, for the read-replica tests.

`pg_basebackup` copies the running test server into a temporary directory, and a second
PostgreSQL starts there as a hot standby on a free port, streaming from the first. Both run as
the `postgres` system user (PostgreSQL refuses to run as root). The test server must accept
replication connections from loopback: where its pg_hba.conf has no such line and the file is
writable (these machines, CI), one is added and the server reloaded.

The copy holds every database of the server, the benchmarks' too: drop those before the tests
with `make bench-clean` (`bookstore_bench` at a million books is 4.4 GB: the replica tests'
setup took 51 s with it).
"""

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from django.db import connections

from tests.processes import free_port

REPLICATION_LINE = "host replication all 127.0.0.1/32 trust\n"


def _as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + args, capture_output=True, text=True, **kwargs)


def _primary() -> dict:
    settings = connections["default"].settings_dict
    return {"host": settings["HOST"] or "127.0.0.1", "port": int(settings["PORT"] or 5432),
            "user": settings["USER"] or "postgres"}  # fmt: skip


def _allow_replication(primary: dict) -> None:
    with psycopg.connect(**primary, dbname="postgres", autocommit=True) as conn:
        hba = conn.execute("SHOW hba_file").fetchone()[0]
        lines = Path(hba).read_text()
        if any(line.split()[:2] == ["host", "replication"] for line in lines.splitlines()
               if line.strip() and not line.startswith("#")):  # fmt: skip
            return
        try:
            with open(hba, "a") as file:
                file.write(REPLICATION_LINE)
        except OSError as exc:
            raise RuntimeError(
                f"The test server refuses replication connections, and {hba} cannot be changed "
                f"({exc}): add `{REPLICATION_LINE.strip()}` to it and reload PostgreSQL."
            ) from exc
        conn.execute("SELECT pg_reload_conf()")


class StreamingReplica:
    def __init__(self) -> None:
        self.primary = _primary()
        _allow_replication(self.primary)
        with psycopg.connect(**self.primary, dbname="postgres") as conn:
            version = conn.execute("SHOW server_version_num").fetchone()[0][:2]
        (self.bin,) = glob.glob(f"/usr/lib/postgresql/{int(version)}/bin") or [
            os.path.dirname(shutil.which("pg_ctl") or "/usr/bin/pg_ctl")
        ]
        self.dir = Path(tempfile.mkdtemp(prefix="bookstore-replica-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        host, port, user = self.primary["host"], str(self.primary["port"]), self.primary["user"]
        backup = _as_postgres([
            f"{self.bin}/pg_basebackup", "-h", host, "-p", port, "-U", user,
            "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
        ], timeout=120)  # fmt: skip
        if backup.returncode:
            raise RuntimeError(f"pg_basebackup failed: {backup.stderr}")
        # Debian keeps the configuration outside the data directory: the copy needs its own.
        (self.data / "postgresql.conf").write_text(
            f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
            f"unix_socket_directories = '{self.dir}'\nhot_standby = on\nfsync = off\n"
            "max_connections = 100\nshared_buffers = 32MB\n"
        )
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        )
        (self.data / "pg_ident.conf").write_text("")
        if os.geteuid() == 0:
            for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
                shutil.chown(self.data / name, "postgres")
        self.start()

    def url(self, database: str) -> str:
        return f"postgres://{self.primary['user']}@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str) -> None:
        done = _as_postgres([f"{self.bin}/pg_ctl", "-D", str(self.data), *args], timeout=60)
        if done.returncode:
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {done.stderr}{done.stdout}")

    def start(self) -> None:
        self._ctl("-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def sql(self, statement: str):
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.primary["user"],
                             dbname="postgres", autocommit=True) as conn:  # fmt: skip
            return conn.execute(statement).fetchall()

    def pause(self) -> None:
        self.sql("SELECT pg_wal_replay_pause()")

    def resume(self) -> None:
        self.sql("SELECT pg_wal_replay_resume()")

    def caught_up(self) -> bool:
        """Whether it has replayed everything the primary had written when asked."""
        with psycopg.connect(**self.primary, dbname="postgres") as conn:
            (lsn,) = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        ((replayed,),) = self.sql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn")
        return bool(replayed)

    def wait_caught_up(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not self.caught_up():
            if time.monotonic() > deadline:
                raise RuntimeError("The replica did not catch up.")
            time.sleep(0.05)

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
