"""The API's throttle: DRF's scoped rates (settings.REST_FRAMEWORK), counted in Redis by
`config.cache.take_cell`."""

from typing import TYPE_CHECKING

from django.core.cache import cache
from rest_framework import throttling
from rest_framework.request import Request

from config.cache import take_cell

if TYPE_CHECKING:  # DRF imports this module while it loads its views
    from rest_framework.views import APIView


class _CellRateThrottle(throttling.SimpleRateThrottle):
    """DRF's rate throttle counting with `take_cell`; DRF's own counting without Redis."""

    num_requests: int | None  # set by DRF from the rate
    duration: int | None

    def allow_request(self, request: Request, view: "APIView") -> bool:
        if self.rate is None or self.num_requests is None or self.duration is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.wait_seconds = take_cell(
            cache, self.key, limit=self.num_requests, period=self.duration
        )
        if self.wait_seconds is None:
            return super().allow_request(request, view)
        return self.wait_seconds == 0

    def wait(self) -> float | None:
        return self.wait_seconds if self.wait_seconds is not None else super().wait()


class ScopedRateThrottle(throttling.ScopedRateThrottle, _CellRateThrottle):
    """DRF's ScopedRateThrottle (`throttle_scope` on a view, a rate per scope), kept as one
    number per client and scope rather than the list of every request's time in the period,
    which DRF reads and writes back whole on every request, at a cost that grows with the
    rate (decision 0017). A client may send `limit` requests at once, then one every
    period/limit. DRF's class finds the scope and its rate, then counts with
    `_CellRateThrottle`."""
