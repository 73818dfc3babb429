"""The client-side rate limiter, Retry-After and backoff waits, and the deny list: no sleeping."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from types import SimpleNamespace

import backoff._sync
import pytest
import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_voluum import client
from tap_voluum.client import (
    DENIED_ENDPOINTS,
    RateLimiter,
    VoluumHTTP,
    is_denied,
    retry_after_seconds,
    retry_waits,
)
from tap_voluum.errors import DeniedEndpointError
from tap_voluum.streams.base import VoluumStream
from tap_voluum.tap import TapVoluum


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
    assert busiest_window(starts) == 14, "at most the ceiling in any second, and no less"
    # One more in 1.1 s at most: a request that arrives up to 100 ms late still makes
    # Voluum count no more than ceiling + 1 (15, Voluum's limit, with the default 14).
    assert busiest_window(starts, RateLimiter.WINDOW_S) == 15
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= RateLimiter.spacing(14) - 1e-9, "starts are paced, not bursts"
    assert RateLimiter.spacing(14) == max(1 / 14, 1.1 / 15)
    # 300 starts, 73 ms apart, take about 22 seconds, not less.
    assert 21.5 <= starts[-1] - starts[0] <= 23.0


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


# --- Retry-After and the backoff waits, computed without sleeping ------------------------


def answer(status: int, retry_after: str | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0.5", 0.5), ("0", 0.0), ("-3", 0.0), ("soon", None), (None, None)],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(answer(429, header)) == seconds


def test_retry_after_as_an_http_date_counts_from_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime(2026, 3, 8, 12, 0, 0, tzinfo=timezone.utc).timestamp()
    monkeypatch.setattr(client, "time", SimpleNamespace(time=lambda: now))
    assert retry_after_seconds(answer(429, "Sun, 08 Mar 2026 12:00:42 GMT")) == 42.0
    assert retry_after_seconds(answer(429, "Sun, 08 Mar 2026 11:59:00 GMT")) == 0.0
    assert retry_after_seconds(None) is None


def test_waits_double_from_half_a_second_up_to_the_cap() -> None:
    waits = retry_waits()
    assert next(waits) == 0.0  # backoff primes the generator
    failure = RetriableAPIError("GET /report: HTTP 503", answer(503))
    got = [waits.send(failure) for _ in range(9)]
    assert got == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_retry_after_replaces_the_computed_wait() -> None:
    waits = offline_stream().backoff_wait_generator()  # what the stream's retries use
    next(waits)
    assert waits.send(RetriableAPIError("429", answer(429, "7"))) == 7.0
    assert waits.send(RetriableAPIError("503", answer(503))) == 1.0  # the second retry
    assert waits.send(requests.ConnectionError("reset")) == 2.0  # no response at all
    assert waits.send(RetriableAPIError("429", answer(429, "0"))) == 0.0


def offline_stream(**config: object) -> VoluumStream:
    settings = {
        "access_id": "id",
        "access_key": "key",
        "start_date": "2026-03-01T00:00:00Z",
        "api_url": "http://127.0.0.1:9",
        **config,
    }
    tap = TapVoluum(config=settings, validate_config=False, setup_mapper=False)
    return tap.streams["offers"]


def test_the_retry_loop_waits_what_retry_after_says(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(backoff._sync, "time", SimpleNamespace(sleep=slept.append))
    monkeypatch.setattr(client, "random", SimpleNamespace(random=lambda: 1.0))  # most jitter
    stream = offline_stream()
    answers = iter([answer(429, "7"), answer(503), answer(200)])

    def send() -> requests.Response:
        response = next(answers)
        if response.status_code >= 400:
            raise RetriableAPIError(f"HTTP {response.status_code}", response)
        return response

    assert stream.request_decorator(send)().status_code == 200
    assert slept == [7.0 * 1.25, 1.0 * 1.25]  # jitter adds at most a quarter


def test_the_retry_loop_gives_up_after_max_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(backoff._sync, "time", SimpleNamespace(sleep=slept.append))
    monkeypatch.setattr(client, "random", SimpleNamespace(random=lambda: 0.0))
    stream = offline_stream(max_retries=2)
    calls = itertools.count(1)

    def send() -> requests.Response:
        next(calls)
        raise RetriableAPIError("HTTP 503", answer(503))

    with pytest.raises(RetriableAPIError):
        stream.request_decorator(send)()
    assert next(calls) == 4, "one try and two retries"
    assert slept == [0.5, 1.0]


@pytest.mark.parametrize("body", [b"", b'{"error": {"code": "NUMBER_OF_REQUEST_FOR_IP_EXCEEDED"}}'])
def test_a_429_halves_the_clients_limiter(body: bytes) -> None:
    client_ = offline_stream(max_requests_per_second=14).client
    response = answer(429)
    response._content = body
    with pytest.raises(RetriableAPIError):
        client_.check(response)
    assert client_.limiter.penalties == 1
    assert client_.limiter.current_limit == 7
