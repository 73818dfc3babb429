"""All HTTP policy of tap-voluum, and the client each tap owns.

One `VoluumClient` per tap holds the HTTP session (its connection pool), the rate limiter
and the access-key session; every stream of that tap talks through it, and two taps in one
process share nothing. The policy, in the order a request meets it:

- built: by the streams (`get_http_request`), or by `VoluumClient.get_json`;
- refused before sending if Voluum denies it to access keys (`denied.py`);
- limited: `RateLimiter` paces starts under `max_requests_per_second`;
- retried: `retrying` is the one retry policy, for data calls and logins alike (429, 5xx,
  resets, timeouts, cut or non-JSON bodies, server-side error codes in a 2xx), with
  exponential waits from 0.5 s (capped at 30 s, up to +25 % jitter), `Retry-After`
  honoured, one log line per retry and never a query string or a header in it;
- checked: `VoluumClient.check` sorts answers into success, retriable trouble, re-login
  (401) and fatal errors carrying Voluum's status and code;
- decoded: msgspec, once (report pages: `PageHead` counts rows without building them).
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections import deque
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import backoff
import msgspec
import requests
from requests.adapters import HTTPAdapter
from singer_sdk.exceptions import RetriableAPIError

from tap_voluum.accounts import ACCOUNT_HEADER, Account, accounts_from
from tap_voluum.auth import TOKEN_HEADER, AccountSessions, VoluumSession
from tap_voluum.denied import DENIED_ENDPOINTS, is_denied
from tap_voluum.errors import (
    RATE_LIMIT_CODE,
    TRANSIENT_CODES,
    TRANSIENT_EXCEPTIONS,
    DeniedEndpointError,
    VoluumAPIError,
    voluum_error,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Mapping

    from backoff.types import Details

__all__ = ["DENIED_ENDPOINTS", "VoluumClient", "is_denied", "retrying"]

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
LOGGER = logging.getLogger("tap-voluum")


class RateLimiter:
    """Lets at most `limit` requests start in any sliding one-second window, evenly paced.

    Two counts hold at every start, on this machine's clock:

    - at most `limit` starts in any one second (`SECOND_S`);
    - at most `limit + 1` starts in any `WINDOW_S` (1.1 s): the server counts arrivals, and
      a busy machine may send a request, or the server admit it, tens of milliseconds
      after it was let go (up to 80 ms seen on a loaded 2-core box). With up to 100 ms of
      such delay the server then counts at most `limit + 1` in any second of its own clock:
      15 with the default 14, Voluum's limit.

    Starts are spread evenly, `max(1/limit, WINDOW_S/(limit + 1))` seconds apart (73 ms at
    14: 13.6 requests a second), never in bursts; a start a little late (a sleep overshoots)
    keeps to that pace instead of pushing every later start back. After a 429 the ceiling
    is halved; it then climbs back by one request per second per second, so the sync
    settles under a tighter real limit.
    """

    SECOND_S = 1.0
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
        """The number of requests allowed per second right now."""
        with self._lock:
            return self._allowed(self._clock())

    @classmethod
    def spacing(cls, allowed: int) -> float:
        """Seconds between two starts when `allowed` requests may start per second."""
        return max(cls.SECOND_S / allowed, cls.WINDOW_S / (allowed + 1))

    def acquire(self) -> None:
        """Block until one more request may start, then count it."""
        while True:
            with self._lock:
                now = self._clock()
                starts = self._starts
                while starts and now - starts[0] >= self.WINDOW_S:
                    starts.popleft()
                allowed = self._allowed(now)
                # Starts in the last second: the newest `allowed` of them are enough to look at.
                in_second = sum(
                    1
                    for t in itertools.islice(reversed(starts), allowed)
                    if now - t < self.SECOND_S
                )
                if in_second < allowed and len(starts) <= allowed and now >= self._next_start:
                    starts.append(now)
                    spacing = self.spacing(allowed)
                    # Late by less than a step: the next start keeps to the pace, so that
                    # such delays do not add up; after an idle moment the pace starts anew.
                    late = now - self._next_start
                    self._next_start = (self._next_start if late < spacing else now) + spacing
                    return
                wait = self._next_start - now
                if in_second >= allowed:
                    wait = max(wait, starts[-allowed] + self.SECOND_S - now)
                if len(starts) > allowed:
                    wait = max(wait, starts[-allowed - 1] + self.WINDOW_S - now)
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
    """A requests session that refuses denied endpoints and waits for the rate limiter.

    One limiter for the run, or one per account (`rate_limit_scope: account`): the account
    a request is for is named by `ACCOUNT_HEADER`, which is taken off before it is sent.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        pool_size: int,
        account_limiters: Mapping[str, RateLimiter] | None = None,
    ) -> None:
        super().__init__()
        self.limiter = limiter
        self.account_limiters = dict(account_limiters or {})
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 4))
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        self.headers["Accept"] = "application/json"

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send one request once the limiter allows it.

        The account mark is not sent, and is put back once the answer is in: a retry
        sends the same prepared request again, and its token and limiter must still be
        its own account's.
        """
        path = urlparse(request.url or "").path
        if is_denied(request.method or "GET", path):
            msg = f"{request.method} {path} refuses access-key sessions; tap-voluum never calls it"
            raise DeniedEndpointError(msg)
        account = request.headers.pop(ACCOUNT_HEADER, None)
        try:
            self.limiter_for(account).acquire()
            return super().send(request, **kwargs)
        finally:
            if account is not None:
                request.headers[ACCOUNT_HEADER] = account

    def limiter_for(self, account: str | None) -> RateLimiter:
        """The limiter an account's requests wait for."""
        return self.account_limiters.get(account or "", self.limiter)


# --- the one retry policy ------------------------------------------------------------


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


def retry_waits() -> Generator[float, Any, None]:
    """Exponential waits from 0.5 s (capped at 30 s), or what `Retry-After` says."""
    attempt = 0
    exc = yield 0.0
    while True:
        response = exc.response if isinstance(exc, RetriableAPIError) else None
        wait = retry_after_seconds(response)
        if wait is None:
            wait = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)
        attempt += 1
        exc = yield wait


def jitter(value: float) -> float:
    """Spread retries by up to a quarter of the wait."""
    return value * (1 + random.random() / 4)


def retrying(
    func: Callable[..., Any],
    *,
    max_tries: int,
    on_backoff: Callable[[Details], None],
    waits: Callable[[], Generator[float, Any, None]] = retry_waits,
    spread: Callable[[float], float] = jitter,
) -> Callable[..., Any]:
    """`func` retried on transient failures, logged once per retry by `on_backoff` alone."""
    return backoff.on_exception(
        waits,
        TRANSIENT_EXCEPTIONS,
        max_tries=max_tries,
        on_backoff=on_backoff,
        jitter=spread,
        logger=None,
    )(func)


def retry_line(what: str, details: Details) -> str:
    """`<what>: retry 2 in 1.0 s after GET /report: HTTP 503 ...` (no query, no header)."""
    exc = details.get("exception")
    reason = str(exc) if isinstance(exc, RetriableAPIError) else type(exc).__name__
    wait = details.get("wait", 0.0)
    return f"{what}: retry {details.get('tries', 0)} in {wait:.1f} s after {reason}"


# --- answers -------------------------------------------------------------------------


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
    """The JSON body of an answer already checked (`VoluumClient.check`)."""
    return msgspec.json.decode(response.content)


def where(response: requests.Response) -> str:
    """`GET /report`: method and path, never the query string."""
    request = response.request
    path = urlparse(request.url or "").path if request else "?"
    return f"{request.method if request else 'GET'} {path}"


def error_message(response: requests.Response) -> str:
    """One line: endpoint (no query string), status, Voluum's code and message."""
    message = f"{where(response)}: HTTP {response.status_code}"
    error = voluum_error(response.content)
    if error:
        code, text = error
        message += f" {code}" + (f": {text}" if text else "")
    elif response.content.lstrip()[:1] == b"<":
        message += " (an HTML page, probably from a gateway)"
    return message


def api_error(response: requests.Response) -> VoluumAPIError:
    """A fatal error carrying the status and Voluum's code, for readings to adapt on."""
    error = voluum_error(response.content)
    code, detail = error if error else ("", "")
    return VoluumAPIError(
        error_message(response), status=response.status_code, code=code, detail=detail
    )


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


class VoluumClient:
    """The HTTP session, rate limiter(s) and access-key sessions of one tap (every account)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.api_url = str(config["api_url"]).rstrip("/")
        self.timeout = int(config["request_timeout"])
        self.max_tries = int(config["max_retries"]) + 1
        self.accounts: dict[str, Account] = {a.name: a for a in accounts_from(config)}
        rate = float(config["max_requests_per_second"])
        self.limiter = RateLimiter(rate)
        per_account = str(config.get("rate_limit_scope") or "run") == "account"
        self.http = VoluumHTTP(
            self.limiter,
            int(config["max_concurrency"]) + 2,
            {name: RateLimiter(rate) for name in self.accounts} if per_account else None,
        )
        self.page_feed: Any = None
        """The pool and memory budget the tap's windowed streams share (`sync_ahead.py`)."""
        self.sessions = AccountSessions(
            {
                name: VoluumSession(
                    self.api_url,
                    account.access_id,
                    account.access_key,
                    self.http,
                    timeout=self.timeout,
                    retry=self.retrying,
                )
                for name, account in self.accounts.items()
            }
        )

    def account(self, name: str | None) -> Account:
        """An account by name (the first one for None)."""
        return self.accounts[name] if name else next(iter(self.accounts.values()))

    def retrying(self, func: Callable[..., Any], what: str = "login") -> Callable[..., Any]:
        """`func` under the one retry policy, each retry logged as `what`."""
        return retrying(
            func,
            max_tries=self.max_tries,
            on_backoff=lambda details: LOGGER.warning("%s", retry_line(what, details)),
        )

    def get_json(
        self, path: str, params: dict[str, Any] | None = None, *, account: str | None = None
    ) -> Any:
        """GET one JSON answer for an account: limited, retried, checked and decoded."""
        name = self.account(account).name

        def attempt() -> Any:
            response = self.http.get(
                f"{self.api_url}{path}",
                params=params or {},
                headers={ACCOUNT_HEADER: name},
                auth=self.sessions,
                timeout=self.timeout,
            )
            self.check(response)
            return decoded(response)

        return self.retrying(attempt, path)()

    # --- checks ----------------------------------------------------------------------

    def check(self, response: requests.Response, *, body: bool = True) -> None:
        """Sort an answer into success, retriable trouble and fatal errors.

        Retriable: 401 (after forgetting the token), 429 or Voluum's rate-limit code in any
        answer (after slowing the limiter), 5xx, and (when `body`) a 2xx whose body is not
        JSON or carries an `error` object with a server-side code. Fatal: other 4xx and
        other `error` objects.
        """
        status = response.status_code
        if status == 401:
            self.sessions.invalidate(response.request.headers.get(TOKEN_HEADER))
            raise RetriableAPIError(error_message(response), response)
        if status < 400:
            if body:
                try:
                    payload = msgspec.json.decode(response.content)
                except msgspec.DecodeError as exc:
                    raise not_json(response) from exc
                self.check_error(
                    payload.get("error") if isinstance(payload, dict) else None, response
                )
            return
        if status == 429 or RATE_LIMIT_CODE.encode() in response.content[:4096]:
            self.penalize(response)
            raise RetriableAPIError(error_message(response), response)
        if status >= 500:
            raise RetriableAPIError(error_message(response), response)
        raise api_error(response)

    def check_error(self, error: Any, response: requests.Response) -> None:
        """Voluum's `error` object inside a 2xx: retry server-side codes, fail on the rest."""
        if not isinstance(error, dict):
            return
        code = error.get("code")
        if code == RATE_LIMIT_CODE:
            self.penalize(response)
        if code in TRANSIENT_CODES:
            raise RetriableAPIError(error_message(response), response)
        raise api_error(response)

    def penalize(self, response: requests.Response) -> None:
        """Slow down the limiter the refused request waited for."""
        token = response.request.headers.get(TOKEN_HEADER) if response.request else None
        self.http.limiter_for(self.sessions.account_of(token)).penalize()

    def read_page(self, response: requests.Response) -> PageHead:
        """Paging figures, totals and row count of a report page, the body checked once."""
        try:
            head = _HEAD_DECODER.decode(response.content)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise not_json(response) from exc
        self.check_error(head.error, response)
        return head


def not_json(response: requests.Response) -> RetriableAPIError:
    """A 2xx whose body is not the JSON expected (cut short, or a gateway's page)."""
    msg = (
        f"{where(response)}: HTTP {response.status_code} with a body that is not the JSON expected"
    )
    return RetriableAPIError(msg, response)
