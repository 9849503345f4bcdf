import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

# Playwright's sync API runs an event loop in the test's thread; the tests' own database
# calls are ordinary blocking ones, which Django would otherwise refuse there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(config, items):
    if Path(CHROMIUM).exists():
        return
    skip = pytest.mark.skip(reason="no Chromium: `apt-get install chromium` (.ci/run does)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args():
    return {
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield SCREENSHOTS
    print(f"\nBrowser screenshots: {SCREENSHOTS}")


@pytest.fixture
def shoot(page, screenshots, request):
    """Save a screenshot of the page as it is now, named after the test and the step."""
    count = iter(range(1, 100))

    def take(step: str) -> None:
        name = f"{request.node.name}-{next(count):02d}-{step}.png"
        page.screenshot(path=str(screenshots / name), full_page=True)

    return take
