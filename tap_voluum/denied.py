"""Voluum's endpoints that refuse access-key sessions: tap-voluum never calls them.

From Voluum's docs (`../shared/voluum-api.md` §1.1). `VoluumHTTP` refuses them before
anything is sent; the sandbox keeps its own copy, and a test checks that both agree.
"""

from __future__ import annotations

import re

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
