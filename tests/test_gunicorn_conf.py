import gc
import runpy
from pathlib import Path

CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


def test_a_web_worker_keeps_what_it_loaded_out_of_the_collectors_passes():
    hooks = runpy.run_path(str(CONF))
    gc.unfreeze()
    try:
        hooks["post_worker_init"](worker=None)
        # Django's modules and models, loaded by this process as by a worker's application
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
