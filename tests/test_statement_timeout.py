"""No request keeps a worker and a database backend busy past DATABASE_STATEMENT_TIMEOUT."""

import os
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connections

SHOW = (
    "from django.db import connections; "
    "print(*[connections[a].cursor().execute('SHOW statement_timeout').fetchone()[0] "
    "for a in ('default', 'read')], "
    "connections['default'].settings_dict['OPTIONS'].get('prepare_threshold'))"
)


def _settings_of(setup: str) -> list[str]:
    """statement_timeout on both aliases, and prepare_threshold, in a new process."""
    test_db = connections["default"].settings_dict
    url = f"postgres://{test_db['USER']}@{test_db['HOST']}:{test_db['PORT']}/{test_db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("DATABASE_STATEMENT_TIMEOUT", None)
    env.pop("DATABASE_PREPARED_STATEMENTS", None)
    env.pop("READ_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", f"{setup}; {SHOW}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=settings.BASE_DIR,
    )
    return done.stdout.split()[-3:]


@pytest.mark.django_db(databases=["default", "read"])
def test_web_processes_have_a_statement_timeout_and_plan_each_query_workers_neither():
    # Web: a 5 s limit, and no prepared statements (decision 0011). Workers: the reverse.
    assert _settings_of("import config.wsgi") == ["5s", "5s", "None"]
    assert _settings_of("import config.asgi") == ["5s", "5s", "None"]
    assert _settings_of("import config.celery, django; django.setup()") == ["0", "0", "5"]


@pytest.mark.urls("tests.slow_urls")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/api/slow/", "/slow/"])
def test_a_statement_cancelled_by_the_timeout_is_a_503_not_a_500(client, path):
    started = time.monotonic()
    response = client.get(path)

    assert time.monotonic() - started < 3  # cancelled, not waited out
    assert response.status_code == 503
    assert response["Retry-After"]
    text = response.json()["detail"] if path.startswith("/api/") else response.content.decode()
    assert "took too long" in text
