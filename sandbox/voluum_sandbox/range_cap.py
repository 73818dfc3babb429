"""The ``range_cap`` knob: report windows longer than N days are refused.

No source states a maximum ``from``→``to`` span for Voluum's reports (``voluum-api.md`` §2.2,
§10: "a refusal must narrow the window, not end the sync"); the knob lets the sandbox play one.
When set, ``/report`` and ``/report/conversions`` answer a window of more than ``range_cap``
days with 400 and Voluum's error envelope, worded as ``range_cap_wording`` selects. The span is
the difference of the wall-clock ``from`` and ``to`` values as sent (read in ``tz``), so a window
of exactly N local days is served even across a DST change, and N days plus one hour is not.
"""

from __future__ import annotations

from typing import Any

from .query import first, parse_hour_time
from .responses import ApiError

# name -> (error code, description template); ``{n}`` is the cap in days.
RANGE_CAP_WORDINGS: dict[str, tuple[str, str]] = {
    "too_long": ("BAD_REQUEST", "Time range is too long: the maximum is {n} days"),
    "apart": ("INVALID_QUERY", "'from' and 'to' must not be more than {n} days apart"),
    "period": ("BAD_REQUEST", "Maximum report period exceeded ({n} days)"),
    "exceeded": (
        "MAX_TIME_RANGE_EXCEEDED",
        "The requested time range exceeds the maximum of {n} days",
    ),
    "max_period": (
        "INVALID_QUERY",
        "Maximum period exceeded: 'from' and 'to' may be at most {n} days apart",
    ),
}
DEFAULT_WORDING = "too_long"


def parse_range_cap(value: Any) -> int | None:
    """Validate a ``range_cap`` knob value: ``None``/0 (off) or a positive number of days."""
    if value is None or value == "" or value is False:
        return None
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"range_cap must be a whole number of days, not {value!r}")
    try:
        days = int(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"range_cap must be a number of days, not {value!r}") from exc
    if days < 0:
        raise ValueError(f"range_cap must not be negative, not {value!r}")
    return days or None


def parse_wording(value: Any) -> str:
    """Validate a ``range_cap_wording`` knob value (a name from ``RANGE_CAP_WORDINGS``)."""
    if value is None or value == "":
        return DEFAULT_WORDING
    if value not in RANGE_CAP_WORDINGS:
        raise ValueError(
            f"unknown range_cap_wording {value!r}; known: {', '.join(RANGE_CAP_WORDINGS)}"
        )
    return str(value)


def range_cap_error(days: int, wording: str) -> ApiError:
    """The 400 answered for a window over ``days`` days, in ``wording``."""
    code, template = RANGE_CAP_WORDINGS[wording]
    return ApiError(400, code, template.format(n=days))


def check_range(query: dict[str, list[str]], days: int | None, wording: str) -> None:
    """Raise the ``range_cap`` refusal when the query's window spans more than ``days`` days.

    Missing or malformed bounds are left alone: the endpoint answers its own 400.
    """
    if days is None:
        return
    raw_from, raw_to = first(query, "from"), first(query, "to")
    if not raw_from or not raw_to:
        return
    try:
        start = parse_hour_time(raw_from, "from")
        end = parse_hour_time(raw_to, "to")
    except ApiError:
        return
    if (end - start).total_seconds() > days * 86_400:
        raise range_cap_error(days, wording)
