"""Voluum access-key session: one login per tap, refreshed before expiry and on 401."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec
import requests
from singer_sdk.exceptions import RetriableAPIError

from tap_voluum.accounts import ACCOUNT_HEADER
from tap_voluum.errors import TRANSIENT_CODES, VoluumAuthError, voluum_error

if TYPE_CHECKING:
    from collections.abc import Callable

LOGIN_PATH = "/auth/access/session"
TOKEN_HEADER = "cwauth-token"
DEFAULT_LIFETIME_S = 4 * 3600.0
MAX_MARGIN_S = 600.0
MARGIN_FRACTION = 0.1


def parse_expiration(value: object, now: float) -> float:
    """Return the epoch seconds of Voluum's `expirationTimestamp` (4 h from now if unreadable)."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return now + DEFAULT_LIFETIME_S


class VoluumSession(requests.auth.AuthBase):
    """Shares one Voluum session token among every stream and thread of a tap.

    The token is renewed a margin before `expirationTimestamp` (10 % of its lifetime, at
    most 10 minutes) and after a 401: `invalidate` forgets the token only if it is still
    the one that failed, so many requests meeting the same expired token cause one login.
    """

    def __init__(
        self,
        api_url: str,
        access_id: str,
        access_key: str,
        http: requests.Session,
        *,
        timeout: float = 60.0,
        retry: Callable[[Callable[[], dict]], Callable[[], dict]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._login_url = api_url.rstrip("/") + LOGIN_PATH
        self._access_id = access_id
        self._access_key = access_key
        self._http = http
        self._timeout = timeout
        self._retry = retry or (lambda func: func)
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.logins = 0

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Attach a live token to the request."""
        request.headers[TOKEN_HEADER] = self.token()
        return request

    def token(self) -> str:
        """Return a token that is not about to expire, logging in when needed."""
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._login()
            assert self._token is not None
            return self._token

    @property
    def current(self) -> str | None:
        """The token in use (None before the first login)."""
        return self._token

    def invalidate(self, failed_token: str | None) -> None:
        """Forget the token after Voluum refused it, unless another thread already renewed it."""
        with self._lock:
            if failed_token is None or failed_token == self._token:
                self._token = None

    def _login(self) -> None:
        payload = self._post_login()
        token = payload.get("token")
        if not isinstance(token, str) or not token:
            raise VoluumAuthError("Voluum's login answer carried no session token")
        now = self._clock()
        expires_at = parse_expiration(payload.get("expirationTimestamp"), now)
        lifetime = max(expires_at - now, 0.0)
        self._token = token
        self._renew_at = expires_at - min(MAX_MARGIN_S, lifetime * MARGIN_FRACTION)
        self.logins += 1

    def _post_login(self) -> dict:
        def attempt() -> dict:
            response = self._http.post(
                self._login_url,
                data=msgspec.json.encode(
                    {"accessId": self._access_id, "accessKey": self._access_key}
                ),
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self._timeout,
                auth=_no_token,  # the session's own auth is this object
            )
            return self._check_login(response)

        return self._retry(attempt)()

    @staticmethod
    def _check_login(response: requests.Response) -> dict:
        status = response.status_code
        if status in (401, 403):
            code = _error_code(response, "BAD_CREDENTIALS")
            msg = (
                f"Voluum rejected the access key ({status} {code}): "
                "check the access_id and access_key settings"
            )
            raise VoluumAuthError(msg)
        if status == 429 or status >= 500:
            raise RetriableAPIError(f"login answered HTTP {status}", response)
        if status >= 400:
            code = _error_code(response, "error")
            raise VoluumAuthError(f"Voluum refused the login (HTTP {status} {code})")
        try:
            payload = msgspec.json.decode(response.content)
        except msgspec.DecodeError as exc:
            raise RetriableAPIError("login answer was not JSON", response) from exc
        if not isinstance(payload, dict):
            raise RetriableAPIError("login answer was not a JSON object", response)
        error = payload.get("error")
        if isinstance(error, dict):
            code = str(error.get("code") or "ERROR")
            if code in TRANSIENT_CODES:
                raise RetriableAPIError(f"login answered {code}", response)
            raise VoluumAuthError(f"Voluum refused the login ({code})")
        return payload


class AccountSessions(requests.auth.AuthBase):
    """The access-key sessions of every account; a request gets its account's token.

    The account is named by `ACCOUNT_HEADER` (the first account when it is not).
    """

    def __init__(self, sessions: dict[str, VoluumSession]) -> None:
        self.by_account = sessions

    @property
    def first(self) -> VoluumSession:
        """The first account's session."""
        return next(iter(self.by_account.values()))

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Attach the token of the request's account."""
        name = request.headers.get(ACCOUNT_HEADER)
        session = self.by_account.get(str(name)) if name else self.first
        if session is None:
            raise VoluumAuthError(f"no access key for account {name}")
        return session(request)

    def invalidate(self, failed_token: str | None) -> None:
        """Forget a token Voluum refused, in the session that holds it."""
        if failed_token:
            for session in self.by_account.values():
                session.invalidate(failed_token)

    def account_of(self, token: str | None) -> str | None:
        """The account whose current token this is."""
        return next(
            (name for name, s in self.by_account.items() if token and s.current == token), None
        )


def _no_token(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


def _error_code(response: requests.Response, default: str) -> str:
    error = voluum_error(response.content)
    return error[0] if error else default
