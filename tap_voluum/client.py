"""The base stream: every HTTP policy of tap-voluum lives here.

Rate limit (one sliding-window limiter per API host, shared by all streams and threads),
retries with backoff that honour `Retry-After`, Voluum's error envelope, re-login on 401,
the access-key deny list and fast JSON decoding.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import deque
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlparse

import backoff
import msgspec
import requests
from requests.adapters import HTTPAdapter
from singer_sdk import RESTStream
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.pagination import SinglePagePaginator

from tap_voluum.auth import TOKEN_HEADER, VoluumSession
from tap_voluum.errors import (
    RATE_LIMIT_CODE,
    TRANSIENT_CODES,
    TRANSIENT_EXCEPTIONS,
    DeniedEndpointError,
    VoluumAPIError,
    VoluumAuthError,
    VoluumConfigError,
    VoluumError,
    voluum_error,
)
from tap_voluum.readings import SyncRun

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable

    from backoff.types import Details
    from singer_sdk.helpers.types import Context
    from singer_sdk.pagination import BaseAPIPaginator

# Errors that end the whole run: every stream would meet them too.
RUN_ENDING_ERRORS = (VoluumAuthError, VoluumConfigError, DeniedEndpointError)
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0

# Endpoints that refuse access-key sessions (Voluum docs; ../shared/voluum-api.md §1.1).
DENIED_ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("PUT", "/profile/password"),
    ("POST", "/auth/access"),
    ("POST", "/payment/coupon"),
    ("POST", "/profile/emailchange/init"),
    ("PATCH", "/setup"),
    ("POST", "/payment/coupon/{couponCode}/validate"),
    ("POST", "/profile/emailchange/resend"),
    ("POST", "/report/manual-cost"),
    ("DELETE", "/payment/profile"),
    ("POST", "/profile/emailchange/cancel"),
    ("PUT", "/zeropark/integration"),
    ("GET", "/payment/profile"),
    ("PUT", "/profile/client"),
    ("DELETE", "/zeropark/integration"),
    ("PUT", "/payment/profile"),
    ("GET", "/profile/invitation"),
    ("GET", "/billing/info"),
    ("DELETE", "/payment/profile/clean"),
    ("POST", "/profile/invitation"),
    ("PUT", "/billing/info"),
    ("GET", "/payment/token"),
    ("DELETE", "/profile/invitation/{email}"),
    ("GET", "/billing/invoice"),
    ("POST", "/payment/topup/execute"),
    ("POST", "/profile/membership"),
    ("GET", "/billing/invoice/{invoiceId}"),
    ("POST", "/payment/topup/init"),
    ("DELETE", "/profile/membership"),
    ("GET", "/billing/notification"),
    ("GET", "/plan"),
    ("DELETE", "/profile/member/{userId}"),
    ("GET", "/billing/plan"),
    ("GET", "/referral"),
    ("POST", "/profile/mfa/initialize"),
    ("PUT", "/billing/plan"),
    ("POST", "/feedback"),
    ("POST", "/profile/mfa/activate"),
    ("GET", "/payment/balance"),
    ("POST", "/profile/mfa/deactivate"),
    ("GET", "/payment/coupon"),
)


def _compile_denied() -> tuple[tuple[str, re.Pattern[str]], ...]:
    def pattern(path: str) -> re.Pattern[str]:
        parts = re.split(r"\{[^}]+\}", path)
        return re.compile("^" + "[^/]+".join(re.escape(p) for p in parts) + "/?$")

    return tuple((method, pattern(path)) for method, path in DENIED_ENDPOINTS)


_DENIED = _compile_denied()


def is_denied(method: str, path: str) -> bool:
    """Tell whether Voluum refuses this call to an access-key session."""
    method = method.upper()
    return any(m == method and p.match(path) for m, p in _DENIED)


class RateLimiter:
    """Lets at most `limit` requests start in any sliding one-second window, evenly paced.

    Starts are spread `WINDOW_S/limit` seconds apart rather than sent in bursts, so a request
    that leaves the machine a little late cannot bunch up with the next second's on the
    server's clock. After a 429 the ceiling is halved; it then climbs back by one request
    per second per second, so the sync settles under a tighter real limit.
    """

    # A little over one second: the server counts arrivals, and a busy machine may send a
    # request, or the server admit it, tens of milliseconds after it was let go (up to 80 ms
    # seen on a loaded 2-core box). Paced starts need 100 ms of such delay before the server
    # counts one request too many in a second.
    WINDOW_S = 1.1

    def __init__(self, limit: float, clock: Any = time.monotonic, sleep: Any = time.sleep) -> None:
        self.ceiling = max(float(limit), 1.0)
        self._limit = self.ceiling
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._next_start = 0.0
        self._lock = threading.Lock()
        self._adjusted_at = clock()
        self.penalties = 0

    @property
    def current_limit(self) -> int:
        """The number of requests allowed per window right now."""
        with self._lock:
            return self._allowed(self._clock())

    def acquire(self) -> None:
        """Block until one more request may start, then count it."""
        while True:
            with self._lock:
                now = self._clock()
                while self._starts and now - self._starts[0] >= self.WINDOW_S:
                    self._starts.popleft()
                allowed = self._allowed(now)
                if len(self._starts) < allowed and now >= self._next_start:
                    self._starts.append(now)
                    self._next_start = now + self.WINDOW_S / allowed
                    return
                wait = self._next_start - now
                if len(self._starts) >= allowed:
                    wait = max(wait, self._starts[0] + self.WINDOW_S - now)
            self._sleep(max(wait, 0.001))

    def penalize(self) -> None:
        """Halve the ceiling after the server said 429."""
        with self._lock:
            now = self._clock()
            self._limit = max(1.0, self._allowed(now) / 2)
            self._adjusted_at = now
            self.penalties += 1

    def _allowed(self, now: float) -> int:
        if self._limit < self.ceiling:
            self._limit = min(self.ceiling, self._limit + (now - self._adjusted_at))
        self._adjusted_at = now
        return int(self._limit)


class VoluumHTTP(requests.Session):
    """A requests session that refuses denied endpoints and waits for the rate limiter."""

    def __init__(self, limiter: RateLimiter, pool_size: int) -> None:
        super().__init__()
        self.limiter = limiter
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 4))
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        self.headers["Accept"] = "application/json"

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send one request once the limiter allows it."""
        path = urlparse(request.url or "").path
        if is_denied(request.method or "GET", path):
            msg = f"{request.method} {path} refuses access-key sessions; tap-voluum never calls it"
            raise DeniedEndpointError(msg)
        self.limiter.acquire()
        return super().send(request, **kwargs)


_http_sessions: dict[str, VoluumHTTP] = {}
_http_lock = threading.Lock()


def shared_http(api_url: str, max_rps: float, pool_size: int) -> VoluumHTTP:
    """Return the process-wide HTTP session (and so limiter) for one API host."""
    key = f"{api_url.rstrip('/')}|{max_rps}"
    with _http_lock:
        http = _http_sessions.get(key)
        if http is None:
            http = VoluumHTTP(RateLimiter(max_rps), pool_size)
            _http_sessions[key] = http
        return http


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Read a `Retry-After` header given in seconds or as an HTTP date."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


class PageHead(msgspec.Struct):
    """What a worker thread reads of a report page: paging figures, totals and any error.

    Decoding into it checks that the whole body is valid JSON and counts the rows without
    building them (`msgspec.Raw` slices); the consumer decodes them once, in their turn.
    """

    totalRows: int | None = None
    totals: dict | None = None
    error: dict | None = None
    rows: list[msgspec.Raw] = msgspec.field(default_factory=list)


_HEAD_DECODER = msgspec.json.Decoder(PageHead)


def decoded(response: requests.Response) -> Any:
    """Return the JSON body decoded once by `validate_response`."""
    payload = getattr(response, "voluum_payload", None)
    if payload is None:
        payload = msgspec.json.decode(response.content)
    return payload


class VoluumStream(RESTStream[Any]):
    """Base for every tap-voluum stream."""

    records_key: ClassVar[str | None] = None
    """Key of the list in Voluum's wrapper object (`{"campaigns": [...]}`)."""

    decode_rows_later: ClassVar[bool] = False
    """Report pages: validate in the worker (`PageHead`), decode rows when consumed."""

    absent_means: ClassVar[str | None] = None
    """For endpoints some accounts lack: what a 403/404 there means (the stream is empty)."""
    ABSENT_STATUSES: ClassVar[tuple[int, ...]] = (403, 404)
    endpoint_absent = False

    @property
    def url_base(self) -> str:
        """Voluum's API root, `https://api.voluum.com` unless `api_url` says otherwise."""
        return str(self.config["api_url"]).rstrip("/")

    @property
    def requests_session(self) -> VoluumHTTP:
        """The process-wide, rate-limited session for this API host."""
        return shared_http(
            self.url_base,
            float(self.config["max_requests_per_second"]),
            int(self.config["max_concurrency"]) + 2,
        )

    @property
    def limiter(self) -> RateLimiter:
        """The rate limiter shared by every stream talking to this host."""
        return self.requests_session.limiter

    @property
    def authenticator(self) -> VoluumSession:
        """The process-wide access-key session."""
        return VoluumSession.shared(
            self.url_base,
            str(self.config["access_id"]),
            str(self.config["access_key"]),
            self.requests_session,
            timeout=self.timeout,
            max_tries=self.backoff_max_tries(),
        )

    @property
    def timeout(self) -> int:
        """Seconds to wait for one answer (`request_timeout`)."""
        return int(self.config["request_timeout"])

    @property
    def http_headers(self) -> dict:
        """Headers Voluum's clients send on every call."""
        return {"Accept": "application/json", "User-Agent": self.user_agent}

    def get_new_paginator(self) -> BaseAPIPaginator:
        """Entity lists come in one page."""
        return SinglePagePaginator()

    # --- responses -------------------------------------------------------------------

    def validate_response(self, response: requests.Response) -> None:
        """Sort an answer into success, retriable trouble and fatal errors.

        Retriable: 401 (after forgetting the token), 429 or Voluum's rate-limit code in any
        answer (after slowing the limiter), 5xx, a 2xx whose body is not JSON, and a 2xx
        carrying an `error` object with a server-side code. Fatal: other 4xx and other
        `error` objects.
        """
        status = response.status_code
        if self.absent_means and status in self.ABSENT_STATUSES:
            return
        if status == 401:
            self.authenticator.invalidate(response.request.headers.get(TOKEN_HEADER))
            raise RetriableAPIError(self.response_error_message(response), response)
        if status < 400:
            self._accept_body(response)
            return
        if status == 429 or RATE_LIMIT_CODE.encode() in response.content[:4096]:
            self.limiter.penalize()
            raise RetriableAPIError(self.response_error_message(response), response)
        if status >= 500:
            raise RetriableAPIError(self.response_error_message(response), response)
        raise self.api_error(response)

    def _accept_body(self, response: requests.Response) -> None:
        if self.decode_rows_later:
            return  # `read_page` decodes and checks the body, inside the same retries
        try:
            payload = msgspec.json.decode(response.content)
        except msgspec.DecodeError as exc:
            raise self._not_json(response) from exc
        self._check_error_object(
            payload.get("error") if isinstance(payload, dict) else None, response
        )
        response.voluum_payload = payload  # type: ignore[attr-defined]

    def _not_json(self, response: requests.Response) -> RetriableAPIError:
        msg = (
            f"{self._where(response)}: HTTP {response.status_code} with a body that is not "
            "the JSON expected"
        )
        return RetriableAPIError(msg, response)

    def _check_error_object(self, error: Any, response: requests.Response) -> None:
        """Voluum's `error` object inside a 2xx: retry server-side codes, fail on the rest."""
        if not isinstance(error, dict):
            return
        code = error.get("code")
        if code == RATE_LIMIT_CODE:
            self.limiter.penalize()
        if code in TRANSIENT_CODES:
            raise RetriableAPIError(self.response_error_message(response), response)
        raise self.api_error(response)

    def read_page(self, response: requests.Response) -> PageHead:
        """Paging figures, totals and row count of a report page, the body checked once."""
        try:
            head = _HEAD_DECODER.decode(response.content)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self._not_json(response) from exc
        self._check_error_object(head.error, response)
        return head

    def api_error(self, response: requests.Response) -> VoluumAPIError:
        """A fatal error carrying the status and Voluum's code, for readings to adapt on."""
        error = voluum_error(response.content)
        code, detail = error if error else ("", "")
        return VoluumAPIError(
            self.response_error_message(response),
            status=response.status_code,
            code=code,
            detail=detail,
        )

    def response_error_message(self, response: requests.Response) -> str:
        """One line: endpoint (no query string), status, Voluum's code and message."""
        message = f"{self._where(response)}: HTTP {response.status_code}"
        error = voluum_error(response.content)
        if error:
            code, text = error
            message += f" {code}" + (f": {text}" if text else "")
        elif response.content.lstrip()[:1] == b"<":
            message += " (an HTML page, probably from a gateway)"
        return message

    @staticmethod
    def _where(response: requests.Response) -> str:
        request = response.request
        path = urlparse(request.url or "").path if request else "?"
        return f"{request.method if request else 'GET'} {path}"

    # --- one stream's failure is that stream's alone -----------------------------------

    failure: str | None = None
    """Why this stream stopped, once it did; the run then exits 1 at the end."""

    @property
    def run(self) -> SyncRun:
        """Readings and failures shared by the streams of this tap (set by the tap)."""
        run = self.__dict__.get("_run")
        if run is None:
            run = self.__dict__["_run"] = SyncRun()
        return run

    @run.setter
    def run(self, value: SyncRun) -> None:
        self.__dict__["_run"] = value

    def get_records(self, context: Context | None) -> Iterable[dict]:
        """`read_records`, but a failure stops this stream alone, with one ERROR line.

        A rejected access key, a bad setting or a denied endpoint still end the whole run.
        """
        if self.failure is not None:
            return
        try:
            yield from self.read_records(context)
        except RUN_ENDING_ERRORS:
            raise
        except Exception as exc:
            self.fail(exc)

    def read_records(self, context: Context | None) -> Iterable[dict]:
        """The stream's records (the SDK's paged request loop unless overridden)."""
        yield from super().get_records(context)

    def fail(self, exc: Exception) -> None:
        """Stop this stream: one ERROR line, remembered for the end-of-run summary."""
        why = str(exc) if isinstance(exc, (VoluumError, RetriableAPIError)) else repr(exc)
        self.failure = why
        self.run.failures[self.name] = why
        self.logger.error("%s: stream failed, the other streams go on: %s", self.name, why)
        self.logger.debug("%s: failure details", self.name, exc_info=exc)

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        """Yield the items of Voluum's list wrapper (or of a bare list)."""
        if self.absent_means and response.status_code in self.ABSENT_STATUSES:
            if not self.endpoint_absent:
                self.endpoint_absent = True
                self.logger.info(
                    "%s: Voluum answered %s for %s; %s, so the stream is empty",
                    self.name,
                    response.status_code,
                    self._where(response),
                    self.absent_means,
                )
            return
        yield from extract_list(decoded(response), self.records_key)

    # --- retries ---------------------------------------------------------------------

    def request_decorator(self, func: Any) -> Any:
        """The SDK's retry policy, logged once per retry by `backoff_handler` alone."""
        return backoff.on_exception(
            self.backoff_wait_generator,
            TRANSIENT_EXCEPTIONS,
            max_tries=self.backoff_max_tries,
            on_backoff=self.backoff_handler,
            jitter=self.backoff_jitter,
            logger=None,
        )(func)

    def backoff_max_tries(self) -> int:
        """One try plus `max_retries` retries."""
        return int(self.config["max_retries"]) + 1

    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        """Exponential waits from 0.5 s (capped at 30 s) unless Voluum says `Retry-After`."""
        return _waits()

    def backoff_jitter(self, value: float) -> float:
        """Spread retries by up to a quarter of the wait."""
        return value * (1 + random.random() / 4)

    def backoff_handler(self, details: Details) -> None:
        """Log each retry on one line, without query strings or headers."""
        exc = details.get("exception")
        reason = str(exc) if isinstance(exc, RetriableAPIError) else type(exc).__name__
        self.logger.warning(
            "%s: retry %d in %.1f s after %s",
            self.name,
            details.get("tries", 0),
            details.get("wait", 0.0),
            reason,
        )


def _waits() -> Generator[float, Any, None]:
    attempt = 0
    exc = yield 0.0
    while True:
        response = exc.response if isinstance(exc, RetriableAPIError) else None
        wait = retry_after_seconds(response)
        if wait is None:
            wait = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)
        attempt += 1
        exc = yield wait


def extract_list(payload: Any, key: str | None) -> list[dict]:
    """Take the list out of `{"<key>": [...]}`, out of any single-list wrapper, or as is.

    Voluum's wrapper key is uncertain for some lists (`/traffic-source`, `/flow`): any key
    holding the only list of objects is taken. Several such lists are an error, never a
    silently empty stream.
    """
    if isinstance(payload, list):
        return payload
    if not isinstance(payload, dict):
        return []
    if key and isinstance(payload.get(key), list):
        return payload[key]
    lists = {k: v for k, v in payload.items() if isinstance(v, list)}
    if len(lists) > 1:
        lists = {k: v for k, v in lists.items() if v and all(isinstance(i, dict) for i in v)}
    if len(lists) > 1:
        msg = f"the answer holds several lists ({', '.join(sorted(lists))}), none named {key!r}"
        raise VoluumAPIError(msg)
    return next(iter(lists.values()), [])


__all__ = [
    "PageHead",
    "RateLimiter",
    "VoluumHTTP",
    "VoluumStream",
    "decoded",
    "extract_list",
    "is_denied",
    "shared_http",
]
