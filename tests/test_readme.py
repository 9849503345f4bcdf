"""The README's API walk-through runs as written against a real server and worker."""

import json
import re
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from apps.read.catalog.models import BookListing
from tests.conftest import wait_for
from tests.factories import stocked_book
from tests.processes import start_web, subprocess_env

README = Path(settings.BASE_DIR) / "README.md"


def walk_through() -> str:
    """The README's shell block that starts by naming the server."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    (block,) = [b for b in blocks if b.startswith("BASE=http://127.0.0.1:8000")]
    return block


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, databases=["default", "read"])
def test_the_readme_api_walk_through_works_as_written(celery_worker, tmp_path):
    book = stocked_book(on_hand=20)
    wait_for(
        lambda: BookListing.objects.filter(pk=book.pk, quantity_available=20).exists(), timeout=15
    )
    web = start_web(env=subprocess_env(), logdir=tmp_path)
    try:
        script = walk_through().replace("http://127.0.0.1:8000", web.url, 1)
        run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    finally:
        web.kill()  # a sync worker would finish the abandoned stream before a graceful stop
    lines = run.stdout.splitlines()
    signed_up, order = json.loads(lines[0]), json.loads(lines[1])
    assert set(signed_up) >= {"customer_id", "position"}
    assert order["status"] == "placed"
    assert order["position"] > signed_up["position"]
    # The read with X-Min-Position finds the order the customer has just placed
    (placed,) = json.loads(lines[2])["results"]
    assert placed["id"] == order["order_id"]
    assert [line["book_id"] for line in placed["lines"]] == [book.pk]
    # The stream opens with the order's status
    stream = "\n".join(lines[3:])
    assert f"id: {order['position']}" in stream
    assert "event: status" in stream
    assert '"status": "placed"' in stream
    assert run.stderr == "", run.stderr
