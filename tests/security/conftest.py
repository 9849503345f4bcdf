# The fuzzing test runs against the same gunicorn-and-worker stack as the fault tests.
from tests.faults.conftest import collected_static, private_redis, stack  # noqa: F401
