"""Real processes for the tests that need them: Celery workers, gunicorn servers, the nginx
gateway, and a Redis of their own that a test may stop and start."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import connections

WORKER_QUEUES = "projections,side-effects,rebuilds"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _url_for_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def subprocess_env(*, redis_url: str | None = None) -> dict[str, str]:
    """The environment of the test run, pointed at the test databases (and at `redis_url` for
    broker and cache, when given)."""
    env = dict(os.environ)
    env["DATABASE_URL"] = _url_for_database(
        os.environ["DATABASE_URL"], connections["default"].settings_dict["NAME"]
    )
    if settings.READ_DATABASE_IS_SEPARATE:
        env["READ_DATABASE_URL"] = _url_for_database(
            os.environ["READ_DATABASE_URL"], connections["read"].settings_dict["NAME"]
        )
    if redis_url:
        env["REDIS_URL"] = redis_url
        env.pop("CELERY_BROKER_URL", None)
        env.pop("CACHE_URL", None)
    return env


class Service:
    """One child process with its log file."""

    def __init__(self, name: str, args: list[str], *, env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.stopped = False  # stopped or killed on purpose, not exited by itself
        self.log_path = Path(logdir) / f"{name}.log"
        with open(self.log_path, "w") as log:
            # A session of its own, so that a kill takes the worker's pool processes with it.
            self.process = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(self, ready, *, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{self.log()[-4000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL to the process and its children, as when the host goes down."""
        self.stopped = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        self.stopped = True
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
        # What the master did not stop in time (a worker holding a stream open) goes with its
        # session: killing the master alone left such a worker serving after the tests.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def start_worker(
    *, env: dict[str, str], logdir: Path, name: str = "worker", beat: bool = True,
    concurrency: int = 2, queues: str = WORKER_QUEUES,
) -> Service:  # fmt: skip
    """A `celery worker` (with beat unless told otherwise), returned once it is ready."""
    args = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues,
        "--concurrency", str(concurrency), "--loglevel", "INFO",
        "--hostname", f"{name}-{os.getpid()}@%h",
        # Mingle asks other workers for revoked task ids, which this project never revokes, and
        # waits a second for answers: a second on each of the suite's many worker starts.
        "--without-mingle",
    ]  # fmt: skip
    if beat:
        args += ["--beat", "--schedule", str(Path(logdir) / f"{name}-beat-schedule")]
    service = Service(name, args, env=env, logdir=logdir)
    service.wait_until(lambda: " ready." in service.log())
    return service


def start_web(
    *, env: dict[str, str], logdir: Path, workers: int = 2, name: str = "web", asgi: bool = False
) -> Service:
    """gunicorn serving the project as production's query and command pools do (sync workers,
    the WSGI application) or, with `asgi`, as its live pool does (uvicorn workers, the ASGI
    application), with its access log in its log file; `service.url` is its address,
    `service.port` its port."""
    port = free_port()
    server = (
        ["config.asgi:application", "--worker-class", "uvicorn_worker.UvicornWorker"]
        if asgi
        else ["config.wsgi:application"]
    )
    service = Service(
        name,
        [
            sys.executable, "-m", "gunicorn", *server, "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--timeout", "60", "--access-logfile", "-",
        ],
        env=env, logdir=logdir,
    )  # fmt: skip
    service.port = port
    service.url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{service.url}/api/", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    service.wait_until(answers)
    return service


GATEWAY_TEMPLATE = Path(settings.BASE_DIR) / "deploy" / "gateway.conf.template"


def start_gateway(*, pools: dict[str, list[Service]], logdir: Path) -> Service:
    """Debian's nginx with the repository's gateway configuration in front of `pools` (commands,
    queries, live: the servers of each); `service.url` is its address."""
    port = free_port()
    server_block = GATEWAY_TEMPLATE.read_text().replace("${GATEWAY_LISTEN}", f"127.0.0.1:{port}")
    for name in ("commands", "queries", "live"):
        servers = "".join(f"server 127.0.0.1:{web.port}; " for web in pools[name])
        server_block = server_block.replace(f"${{{name.upper()}_UPSTREAM}}", servers)
    conf = Path(logdir) / "nginx.conf"
    conf.write_text(
        f"pid {logdir}/nginx.pid;\nerror_log {logdir}/nginx-error.log;\nevents {{}}\n"
        f"http {{\naccess_log off;\nclient_body_temp_path {logdir};\n"
        f"proxy_temp_path {logdir};\n{server_block}\n}}\n"
    )
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    service = Service(
        "gateway",
        [binary, "-c", str(conf), "-g", "daemon off;"],
        env=dict(os.environ),
        logdir=logdir,
    )
    service.port = port
    service.url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    service.wait_until(answers, timeout=20)
    return service


class RedisServer:
    """A redis-server on a port of its own, which a test may stop and start again (it keeps
    nothing on disk, like the machine's: a restart loses every queued message)."""

    def __init__(self, logdir: Path) -> None:
        self.port = free_port()
        self.logdir = Path(logdir)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.service: Service | None = None

    def start(self) -> None:
        self.service = Service(
            "redis",
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no",
            ],
            env=dict(os.environ), logdir=self.logdir,
        )  # fmt: skip
        self.service.wait_until(self.answers, timeout=10)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.service:
            self.service.kill()
            self.service = None
