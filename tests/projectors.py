from collections.abc import Iterator
from contextlib import contextmanager

from apps.cqrs.projectors import Projector, registry


@contextmanager
def registered(projector: Projector) -> Iterator[Projector]:
    """Make a test's projector instance known to the runtime, the sweep and status while the
    test runs (`@register` would make an instance of its own, which the test could not read)."""
    registry._projectors[projector.name] = projector
    try:
        yield projector
    finally:
        registry.unregister(projector.name)
