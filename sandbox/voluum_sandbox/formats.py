"""Text formats of the sandbox: timestamps (``...mmmZ``, Voluum's AM/PM) and generated ids."""

from __future__ import annotations

import random
import re
import uuid
from datetime import date, datetime, timezone

UTC = timezone.utc
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
DAY_MS = 86_400_000
_M64 = (1 << 64) - 1
_B32 = "0123456789ABCDEFGHIJKLMNOPQRSTUV"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_ms(ms: int) -> str:
    """Format epoch milliseconds as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def ampm(local_seconds: int) -> str:
    """Format local wall-clock epoch seconds as Voluum's ``YYYY-MM-DD hh:mm:ss AM`` string."""
    days, sec = divmod(local_seconds, 86400)
    hour, rem = divmod(sec, 3600)
    minute, second = divmod(rem, 60)
    day = date.fromordinal(EPOCH_ORDINAL + days)
    half = "AM" if hour < 12 else "PM"
    return f"{day.isoformat()} {hour % 12 or 12:02d}:{minute:02d}:{second:02d} {half}"


def mix64(x: int) -> int:
    """Splitmix64 finaliser: a bijection on 64-bit integers (distinct inputs give distinct ids)."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def b32(x: int, width: int) -> str:
    """Encode the low ``5 * width`` bits of ``x`` in an upper-case base-32 alphabet."""
    out = []
    for _ in range(width):
        out.append(_B32[x & 31])
        x >>= 5
    return "".join(out)


def random_uuid(rng: random.Random) -> str:
    """Return a uuid4-shaped string drawn from ``rng``."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def instant_ms(value: datetime | date | str | float | None, name: str) -> int:
    """Epoch milliseconds of an instant: a datetime (naive = UTC), epoch ms, or ISO-8601 text."""
    if value is None:
        raise ValueError(f"{name} is required")
    if isinstance(value, bool):
        raise ValueError(f"{name}: not an instant: {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"{name}: not an ISO-8601 instant: {value!r}") from exc
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH  # exact integer arithmetic (no float rounding of the milliseconds)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
