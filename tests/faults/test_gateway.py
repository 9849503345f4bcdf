"""The gateway (deploy/gateway.conf.template) in front of two pools of the web app, as compose
runs them: Debian's nginx with the repository's configuration, two gunicorn servers. Each kind of
request reaches its pool, and one pool down does not take the other down."""

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import wait_for
from tests.processes import free_port, start_web, subprocess_env

pytestmark = [
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, databases=["default", "read"]),
]
TEMPLATE = Path(settings.BASE_DIR) / "deploy" / "gateway.conf.template"


def status(method: str, url: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0  # no answer


@pytest.fixture
def gateway(tmp_path, collected_static):
    env = subprocess_env()
    pools = {}
    nginx = None
    try:
        for name in ("commands", "queries"):
            pools[name] = start_web(env=env, logdir=tmp_path, name=name, workers=1)
        port = free_port()
        server_block = (
            TEMPLATE.read_text()
            .replace("${COMMANDS_UPSTREAM}", f"server 127.0.0.1:{pools['commands'].port};")
            .replace("${QUERIES_UPSTREAM}", f"server 127.0.0.1:{pools['queries'].port};")
            .replace("${GATEWAY_LISTEN}", f"127.0.0.1:{port}")
        )
        conf = tmp_path / "nginx.conf"
        conf.write_text(
            f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/nginx-error.log;\nevents {{}}\n"
            f"http {{\naccess_log off;\nclient_body_temp_path {tmp_path};\n"
            f"proxy_temp_path {tmp_path};\n{server_block}\n}}\n"
        )
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        nginx = subprocess.Popen([binary, "-c", str(conf), "-g", "daemon off;"])
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: status("GET", f"{url}/api/") == 200, timeout=20)
        yield url, pools
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        for pool in pools.values():
            pool.stop()


def served_by(pools, method: str, path: str) -> set[str]:
    time.sleep(0.2)  # the access log line is written after the response
    return {name for name, pool in pools.items() if f'"{method} {path}' in pool.log()}


def test_commands_and_queries_reach_their_own_pools(gateway, report):
    url, pools = gateway
    routes = [
        ("GET", "/api/books/", None, "queries"),
        ("GET", "/books/", None, "queries"),
        ("POST", "/api/commands/place-order/", b'{"lines": []}', "commands"),
        ("POST", "/sign-up/", b"{}", "commands"),
        ("DELETE", "/api/books/1/", None, "commands"),
    ]
    for method, path, body, pool in routes:
        answer = status(method, f"{url}{path}", body)
        assert answer < 500, (method, path, answer)
        assert served_by(pools, method, path) == {pool}, (method, path)

    report("gateway", routes=len(routes), each_reached_its_pool=True)


def test_the_catalog_serves_with_the_command_pool_down(gateway):
    url, pools = gateway
    pools["commands"].stop()
    assert status("GET", f"{url}/api/books/") == 200
    assert status("GET", f"{url}/books/") == 200
    assert status("POST", f"{url}/api/commands/place-order/", b"{}") == 502


def test_commands_are_taken_with_the_query_pool_down(gateway):
    url, pools = gateway
    pools["queries"].stop()
    assert status("POST", f"{url}/api/commands/place-order/", b"{}") == 403  # DRF: sign in
    assert status("GET", f"{url}/api/books/") == 502
