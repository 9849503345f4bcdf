"""Production settings pass Django's deployment checklist with no warning."""

import os
import secrets
import subprocess
import sys


def deploy_check(**overrides: str) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CELERY_", "CACHE_"))
    }
    env.update(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="shop.example.com",
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
        **overrides,
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_production_settings_pass_check_deploy_with_no_warning():
    result = deploy_check()
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_check_does_catch_a_debug_setting_left_on():
    result = deploy_check(DJANGO_DEBUG="1")
    assert result.returncode != 0
    assert "security.W018" in result.stderr  # DEBUG must not be True in deployment
