# The fuzzing test runs against the same gunicorn-and-worker stack as the fault tests.
from tests.faults.conftest import private_redis, stack  # noqa: F401
