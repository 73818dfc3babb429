"""Authentication: logins, session tokens with a fixed expiry, and the access-key deny list.

Logins take an access key or an email and password, for one of the server's accounts; the deny
list holds Voluum's endpoints that refuse sessions created with an access key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from .formats import iso_ms
from .responses import ApiError, Response, error_response, json_response

if TYPE_CHECKING:
    from .accounts import Account

# Endpoints that deny sessions created with an access key (Voluum docs).
ACCESS_KEY_DENY_LIST = (
    "PUT /profile/password",
    "POST /auth/access",
    "POST /payment/coupon",
    "POST /profile/emailchange/init",
    "PATCH /setup",
    "POST /payment/coupon/{couponCode}/validate",
    "POST /profile/emailchange/resend",
    "POST /report/manual-cost",
    "DELETE /payment/profile",
    "POST /profile/emailchange/cancel",
    "PUT /zeropark/integration",
    "GET /payment/profile",
    "PUT /profile/client",
    "DELETE /zeropark/integration",
    "PUT /payment/profile",
    "GET /profile/invitation",
    "GET /billing/info",
    "DELETE /payment/profile/clean",
    "POST /profile/invitation",
    "PUT /billing/info",
    "GET /payment/token",
    "DELETE /profile/invitation/{email}",
    "GET /billing/invoice",
    "POST /payment/topup/execute",
    "POST /profile/membership",
    "GET /billing/invoice/{invoiceId}",
    "POST /payment/topup/init",
    "DELETE /profile/membership",
    "GET /billing/notification",
    "GET /plan",
    "DELETE /profile/member/{userId}",
    "GET /billing/plan",
    "GET /referral",
    "POST /profile/mfa/initialize",
    "PUT /billing/plan",
    "POST /feedback",
    "POST /profile/mfa/activate",
    "GET /payment/balance",
    "POST /profile/mfa/deactivate",
    "GET /payment/coupon",
)


def _deny_pattern(entry: str) -> tuple[str, re.Pattern[str]]:
    """Compile ``"METHOD /path/{param}"`` into a method and a path regex."""
    method, path = entry.split(" ", 1)
    regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path))
    return method, re.compile(f"^{regex}/?$")


DENY_PATTERNS = [_deny_pattern(e) for e in ACCESS_KEY_DENY_LIST]


def access_denied(method: str, path: str) -> bool:
    """Whether ``method path`` is on the deny list (refused to access-key sessions)."""
    return any(
        method == deny_method and pattern.match(path) for deny_method, pattern in DENY_PATTERNS
    )


def token_hash(token: str) -> str:
    """Short sha-256 prefix identifying a token in logs (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass
class Session:
    """An issued session token."""

    expires_at: float
    kind: str  # "access" (access key) or "password" (email/password)
    account: int = 0  # index of the account that logged in


class Sessions:
    """The session tokens a server issued: its logins, token checks, ``/auth/session``."""

    def __init__(self, accounts: list[Account], lifetime: float) -> None:
        """No session yet; tokens issued later live ``lifetime`` seconds."""
        self.accounts = accounts
        self.lifetime = float(lifetime)
        self._lock = threading.Lock()
        self._tokens: dict[str, Session] = {}

    def tokens(self) -> list[str]:
        """Every token issued (expired ones too)."""
        with self._lock:
            return list(self._tokens)

    def login(self, path: str, body: bytes) -> tuple[Response, Account | None]:
        """``POST /auth/access/session`` and ``POST /auth/session``: the answer, the account."""
        try:
            data = msgspec.json.decode(body or b"{}")
        except msgspec.DecodeError as exc:
            raise ApiError(400, "BAD_REQUEST", "Malformed JSON body") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "BAD_REQUEST", "Malformed JSON body")
        by_key = path.rstrip("/") == "/auth/access/session"
        account = next((a for a in self.accounts if _matches(a, data, by_key)), None)
        if account is None:
            return error_response(401, "BAD_CREDENTIALS"), None
        token = secrets.token_hex(16)
        with self._lock:
            expires = time.time() + self.lifetime
            self._tokens[token] = Session(
                expires, "access" if by_key else "password", account.index
            )
        answer = {"token": token, "expirationTimestamp": _iso(expires), "inaugural": False}
        return json_response(200, answer), account

    def check(self, token: str | None) -> Session:
        """Return the session of a live token, else raise a 401 envelope."""
        if not token:
            raise ApiError(401, "UNAUTHORIZED", "Missing cwauth-token header")
        session = self._tokens.get(token)
        if session is None:
            raise ApiError(401, "UNAUTHORIZED", "Invalid session token")
        if time.time() >= session.expires_at:
            raise ApiError(401, "SESSION_EXPIRED", "Session expired")
        return session

    def answer(self, method: str, token: str) -> Response:
        """``GET /auth/session`` (session check) and ``DELETE /auth/session`` (logout)."""
        if method == "GET":
            alive = {
                "alive": True,
                "expirationTimestamp": _iso(self._tokens[token].expires_at),
                "inaugural": False,
                "time": int(time.time() * 1000),
            }
            return json_response(200, alive)
        if method == "DELETE":
            with self._lock:
                self._tokens.pop(token, None)
            return Response(200, b"")
        raise ApiError(405, "METHOD_NOT_ALLOWED", f"{method} not allowed on /auth/session")

    def expire_all(self) -> None:
        """Make every issued token invalid (next call: 401 SESSION_EXPIRED)."""
        with self._lock:
            for session in self._tokens.values():
                session.expires_at = 0.0


def _matches(account: Account, data: dict[str, Any], by_key: bool) -> bool:
    """Whether a login body carries the account's access key (or its email and password)."""
    if by_key:
        return data.get("accessId") == account.access_id and (
            data.get("accessKey") == account.access_key
        )
    email = data.get("email")
    return (
        isinstance(email, str)
        and email.strip().lower() == account.email
        and data.get("password") == account.password
    )


def _iso(epoch: float) -> str:
    """``expirationTimestamp`` format of an epoch time: ``...mmmZ``."""
    return iso_ms(int(epoch * 1000))
