"""Shoppers reading the catalog over HTTP, counting what they would see go wrong: any status but
200, a first page shorter than a full page, a 404 for a book that exists. Used by the
rebuild-while-serving test and its benchmark (bench/rebuild.py)."""

import json
import random
import statistics
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

PAGE_SIZE = 50
# First pages of lists that hold more than a page. Redis keeps the first three (their parameters
# are cached ones, apps/read/catalog/cache.py); the last two are read from the table each time.
LISTS = [
    "/api/books/",
    "/api/books/?language=en",
    "/api/books/?ordering=-price",
    "/api/books/?q=book",
    "/api/books/?price_min=1",
]


@dataclass(frozen=True)
class Read:
    at: float  # time.monotonic() when it was sent
    seconds: float
    kind: str  # "detail" or the list's URL
    status: int
    short: bool  # a first page with fewer than PAGE_SIZE books
    missing: bool  # a 404 for a book that exists


class Readers:
    """`threads` readers, each sending one request after another: half of them a book's detail
    (a random one of `book_ids`), half a list's first page, in turn."""

    def __init__(self, base_url: str, book_ids: list[int], *, threads: int = 4) -> None:
        self.base_url = base_url
        self.book_ids = book_ids
        self.reads: list[Read] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def start(self) -> "Readers":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Read]:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return sorted(self.reads, key=lambda read: read.at)

    def _run(self, n: int) -> None:
        rng = random.Random(n)
        turn = n
        while not self._stop.is_set():
            turn += 1
            if turn % 2:
                read = self._get(f"/api/books/{rng.choice(self.book_ids)}/", "detail")
            else:
                url = LISTS[(turn // 2) % len(LISTS)]
                read = self._get(url, url)
            with self._lock:
                self.reads.append(read)

    def _get(self, path: str, kind: str) -> Read:
        request = urllib.request.Request(
            self.base_url + path, headers={"Accept": "application/json"}
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, b""
        except OSError:
            status, body = 0, b""  # no answer at all
        seconds = time.monotonic() - started
        short = False
        if kind != "detail" and status == 200:
            short = len(json.loads(body)["results"]) < PAGE_SIZE
        return Read(started, seconds, kind, status, short, kind == "detail" and status == 404)


def tally(reads: list[Read]) -> dict:
    """What went wrong among `reads`, and how long they took (ms)."""
    if not reads:
        return {"reads": 0}
    ms = sorted(read.seconds * 1000 for read in reads)
    return {
        "reads": len(reads),
        "not_200": sum(read.status != 200 for read in reads),
        "short_first_pages": sum(read.short for read in reads),
        "missing_books": sum(read.missing for read in reads),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
    }


def between(reads: list[Read], start: float, end: float) -> list[Read]:
    return [read for read in reads if start <= read.at < end]
