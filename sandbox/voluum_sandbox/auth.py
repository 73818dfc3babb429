"""Authentication: logins, session tokens with a fixed expiry, and the access-key deny list.

Logins take an access key or an email and password; the deny list holds Voluum's endpoints that
refuse sessions created with an access key.
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


class SessionAuth:
    """Part of :class:`~voluum_sandbox.server.SandboxServer`: logins and token checks."""

    accounts: list[Account]
    token_lifetime: float
    _lock: threading.Lock
    _sessions: dict[str, Session]

    def _login(self, path: str, body: bytes, entry: dict[str, Any] | None = None) -> Response:
        """``POST /auth/access/session`` and ``POST /auth/session`` (``entry["account"]``:
        the index of the account logged in to).
        """  # noqa: D205
        try:
            data = msgspec.json.decode(body or b"{}")
        except msgspec.DecodeError as exc:
            raise ApiError(400, "BAD_REQUEST", "Malformed JSON body") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "BAD_REQUEST", "Malformed JSON body")
        account = self._account_for(path, data)
        if account is None:
            return error_response(401, "BAD_CREDENTIALS")
        kind = "access" if path.rstrip("/") == "/auth/access/session" else "password"
        if entry is not None:
            entry["account"] = account.index
        token = secrets.token_hex(16)
        now = time.time()
        with self._lock:
            expires = now + self.token_lifetime
            self._sessions[token] = Session(expires, kind, account.index)
        return json_response(
            200,
            {
                "token": token,
                "expirationTimestamp": iso_ms(int(expires * 1000)),
                "inaugural": False,
            },
        )

    def _account_for(self, path: str, data: dict[str, Any]) -> Account | None:
        """The account whose access key (or email and password) the login body carries."""
        for acc in self.accounts:
            if path.rstrip("/") == "/auth/access/session":
                ok = data.get("accessId") == acc.access_id and data.get("accessKey") == (
                    acc.access_key
                )
            else:
                email = data.get("email")
                ok = (
                    isinstance(email, str)
                    and email.strip().lower() == acc.email
                    and data.get("password") == acc.password
                )
            if ok:
                return acc
        return None

    def _check_session(self, token: str | None) -> Session:
        """Return the session of a live token, else raise a 401 envelope."""
        if not token:
            raise ApiError(401, "UNAUTHORIZED", "Missing cwauth-token header")
        session = self._sessions.get(token)
        if session is None:
            raise ApiError(401, "UNAUTHORIZED", "Invalid session token")
        if time.time() >= session.expires_at:
            raise ApiError(401, "SESSION_EXPIRED", "Session expired")
        return session
