"""gunicorn's configuration for `python -m bench.web_profile`: the project's own
(gunicorn.conf.py), and in each worker a sampler of where its CPU time goes.

Once a worker has answered WARM_UP requests (the first ones import what Django loads lazily),
setitimer(ITIMER_PROF) sends it SIGPROF each time it has used INTERVAL of CPU, user and system
time together: waits on PostgreSQL and Redis take none, so they are not counted, as a
wall-clock sampler (py-spy without a working idle check) would count them. The handler counts
the Python stack it interrupted; a C function shows as the Python frame that called it. Linux
delivers the signal on its scheduler's tick, so a sample stands for about 4 ms here whatever
INTERVAL asks. Each worker writes its counts to BENCH_SAMPLES_DIR when it exits.
"""

import collections
import os
import runpy
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType

_project = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
# Every setting and hook of the project's; the three hooks below call the project's own too.
globals().update({name: value for name, value in _project.items() if not name.startswith("__")})


def _hook(name: str) -> Callable[..., None]:
    return _project.get(name, lambda *args: None)


INTERVAL = 0.001
WARM_UP = 10
_SITE = "site-packages/"
_stacks: collections.Counter[str] = collections.Counter()
_answered = 0


def _frame_name(frame: FrameType) -> str:
    path = frame.f_code.co_filename
    path = path.split(_SITE, 1)[1] if _SITE in path else path
    return f"{frame.f_code.co_name} ({path})"


def _sample(signum: int, frame: FrameType | None) -> None:
    names = []
    while frame is not None:
        names.append(_frame_name(frame))
        frame = frame.f_back
    _stacks[";".join(reversed(names))] += 1


def post_worker_init(worker) -> None:
    _hook("post_worker_init")(worker)
    signal.signal(signal.SIGPROF, _sample)


def pre_request(worker, request) -> None:
    global _answered
    _hook("pre_request")(worker, request)
    _answered += 1
    if _answered == WARM_UP:
        signal.setitimer(signal.ITIMER_PROF, INTERVAL, INTERVAL)


def worker_exit(server, worker) -> None:
    signal.setitimer(signal.ITIMER_PROF, 0, 0)
    # Collapsed stacks, as flamegraph.pl and speedscope read them.
    lines = "".join(f"{stack} {count}\n" for stack, count in _stacks.items())
    (Path(os.environ["BENCH_SAMPLES_DIR"]) / f"{os.getpid()}.txt").write_text(lines)
    _hook("worker_exit")(server, worker)
