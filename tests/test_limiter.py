"""The client-side rate limiter and the access-key deny list, on a fake clock."""

from __future__ import annotations

import itertools

import pytest
import requests

from tap_voluum.client import DENIED_ENDPOINTS, RateLimiter, VoluumHTTP, is_denied
from tap_voluum.errors import DeniedEndpointError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def busiest_window(starts: list[float], width: float = 1.0) -> int:
    """Most starts inside any half-open window of `width` seconds."""
    best, left = 0, 0
    for right, t in enumerate(starts):
        while t - starts[left] >= width:
            left += 1
        best = max(best, right - left + 1)
    return best


def test_never_more_than_the_ceiling_in_any_sliding_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(14, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(300):
        limiter.acquire()
        starts.append(clock.now)
    assert busiest_window(starts) <= 14
    assert busiest_window(starts, RateLimiter.WINDOW_S) == 14
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= RateLimiter.WINDOW_S / 14 - 1e-9, "starts are paced, not bursts"
    # 300 starts at 14 per (a little over) one second take about 23 seconds, not less.
    assert 21.5 <= starts[-1] - starts[0] <= 24.0


def test_429_halves_the_rate_and_it_recovers_gradually() -> None:
    clock = FakeClock()
    limiter = RateLimiter(14, clock=clock, sleep=clock.sleep)
    assert limiter.current_limit == 14
    limiter.penalize()
    assert limiter.current_limit == 7
    limiter.penalize()
    assert limiter.current_limit == 3
    clock.now += 4.0
    assert limiter.current_limit == 7
    clock.now += 100.0
    assert limiter.current_limit == 14
    assert limiter.penalties == 2


def test_rate_never_drops_below_one_request_per_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.penalize()
    assert limiter.current_limit == 1


@pytest.mark.parametrize(("method", "path"), DENIED_ENDPOINTS)
def test_every_denied_endpoint_is_recognised(method: str, path: str) -> None:
    concrete = path.replace("{couponCode}", "ABC").replace("{email}", "a@b.c")
    concrete = concrete.replace("{invoiceId}", "42").replace("{userId}", "u1")
    assert is_denied(method, concrete)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/report"),
        ("GET", "/campaign"),
        ("POST", "/auth/access/session"),
        ("GET", "/profile/password"),
        ("GET", "/report/manual-cost"),
        ("GET", "/billing/plans"),
    ],
)
def test_allowed_endpoints_are_not_denied(method: str, path: str) -> None:
    assert not is_denied(method, path)


def test_the_http_session_refuses_a_denied_endpoint_before_sending() -> None:
    http = VoluumHTTP(RateLimiter(5), pool_size=2)
    request = requests.Request("GET", "https://api.voluum.invalid/billing/info").prepare()
    with pytest.raises(DeniedEndpointError, match="refuses access-key sessions"):
        http.send(request)
