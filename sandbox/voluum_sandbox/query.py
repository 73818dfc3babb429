"""Query strings of the report endpoints, and the normalised :class:`ReportQuery`.

Shared parameter readers (``from``/``to``/``tz``, paging, sort, filters) and the parsing of a
``/report`` query.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .catalog import CURRENCY_RATES, canonical_dimension
from .columns import DIM_FIELDS, METRIC_COLUMNS
from .responses import ApiError
from .timezones import TzContext, tz_context

DEFAULT_LIMIT = 100
MAX_LIMIT = 100_000
MAX_GROUP_LEVELS = 3


# --------------------------------------------------------------------------- params


def first(query: dict[str, list[str]], name: str) -> str | None:
    """First value of a query parameter, or ``None``."""
    values = query.get(name)
    return values[0] if values else None


def many(query: dict[str, list[str]], *names: str) -> list[str]:
    """All values of repeatable parameters (comma-joined values are split), in order."""
    out: list[str] = []
    for name in names:
        for value in query.get(name, []):
            out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?(Z)?$"
)


def parse_hour_time(value: str, name: str) -> datetime:
    """Parse a ``from``/``to`` value as a naive wall-clock datetime that must be on a whole hour.

    Accepts ``YYYY-MM-DD``, ``YYYY-MM-DDTHH``, ``YYYY-MM-DDTHH:MM``, ``YYYY-MM-DDTHH:MM:SS``
    and ``...:SS.fffZ`` (the ``Z`` is ignored: the value is read in ``tz``).
    """
    m = _TIME_RE.match(value.strip())
    if not m:
        raise ApiError(
            400, "BAD_REQUEST", f"Invalid time format of parameter '{name}': {value}", [value]
        )
    year, month, day, hour, minute, second, frac, _ = m.groups()
    if (minute and int(minute)) or (second and int(second)) or (frac and int(frac)):
        raise ApiError(
            400,
            "BAD_REQUEST",
            f"Invalid time format of parameter '{name}': {value}. Time must be on a full hour",
            [value],
        )
    try:
        return datetime(int(year), int(month), int(day), int(hour or 0))
    except ValueError as exc:
        raise ApiError(400, "BAD_REQUEST", f"Invalid date in parameter '{name}': {value}") from exc


def parse_window(query: dict[str, list[str]]) -> tuple[TzContext, int, int]:
    """Validate ``from``/``to``/``tz``; return the zone and the UTC bounds ``[start, end)``."""
    raw_from = first(query, "from")
    raw_to = first(query, "to")
    for name, raw in (("from", raw_from), ("to", raw_to)):
        if raw is None or raw == "":
            raise ApiError(400, "PARAMETER_MISSING", f"Missing required parameter: {name}", [name])
    assert raw_from is not None and raw_to is not None
    start = parse_hour_time(raw_from, "from")
    end = parse_hour_time(raw_to, "to")
    tz_name = first(query, "tz") or "Etc/GMT"
    try:
        tzc = tz_context(tz_name)
    except ValueError as exc:
        raise ApiError(400, "BAD_REQUEST", f"Unknown time zone: {tz_name}", [tz_name]) from exc
    start_utc = tzc.to_utc(start)
    end_utc = tzc.to_utc(end)
    if end_utc < start_utc:
        raise ApiError(400, "BAD_REQUEST", "Parameter 'from' must not be after 'to'")
    return tzc, start_utc, end_utc


def parse_paging(query: dict[str, list[str]], default: int, maximum: int) -> tuple[int, int]:
    """Return the effective ``(limit, offset)``; ``limit`` is capped at ``maximum``."""
    try:
        limit = int(first(query, "limit") or default)
        offset = int(first(query, "offset") or 0)
    except ValueError as exc:
        raise ApiError(400, "BAD_REQUEST", "limit and offset must be integers") from exc
    if limit < 1 or offset < 0:
        raise ApiError(400, "BAD_REQUEST", "limit must be >= 1 and offset >= 0")
    return min(limit, maximum), offset


def parse_sort(
    query: dict[str, list[str]], allowed: Callable[[str], bool]
) -> tuple[str | None, bool]:
    """Validate ``sort``/``direction``; return the field (or ``None``) and ``descending``."""
    sort = first(query, "sort")
    direction = (first(query, "direction") or "ASC").upper()
    if direction not in ("ASC", "DESC"):
        raise ApiError(400, "INVALID_QUERY", f"Invalid sort direction: {direction}")
    if sort is None or sort == "":
        return None, direction == "DESC"
    if ":" in sort or not allowed(sort):
        raise ApiError(400, "INVALID_QUERY", f"Invalid sort column: {sort}", [sort])
    return sort, direction == "DESC"


# --------------------------------------------------------------------------- queries

INCLUDE_VALUES = {"ACTIVE", "ARCHIVED", "ALL", "TRAFFIC"}
RELATIONS: dict[str, Callable[[float, float], bool]] = {
    "EQUAL": lambda a, b: a == b,
    "NOT_EQUAL": lambda a, b: a != b,
    "GREATER": lambda a, b: a > b,
    "GREATER_OR_EQUAL": lambda a, b: a >= b,
    "LESS": lambda a, b: a < b,
    "LESS_OR_EQUAL": lambda a, b: a <= b,
}


@dataclass(frozen=True)
class ReportQuery:
    """A normalised ``/report`` query (the cache key)."""

    tz: str
    start_utc: int
    end_utc: int
    dims: tuple[str, ...]
    include: str
    mode: str
    currency: str
    workspaces: tuple[str, ...] | None
    dim_filters: tuple[tuple[str, str], ...]
    metric_filters: tuple[tuple[str, str, float], ...]
    sort: str | None
    descending: bool


def parse_filters(
    query: dict[str, list[str]],
) -> tuple[list[tuple[str, str]], list[tuple[str, str, float]]]:
    """Parse ``filterN``/``filterNValue``/``filterNRelation`` into dimension and metric filters."""
    dim_filters: list[tuple[str, str]] = []
    metric_filters: list[tuple[str, str, float]] = []
    for name in sorted(query, key=lambda k: (len(k), k)):
        m = re.fullmatch(r"filter(\d+)", name)
        if not m:
            continue
        key = first(query, name) or ""
        value = first(query, f"{name}Value")
        if value is None:
            raise ApiError(400, "PARAMETER_MISSING", f"Missing required parameter: {name}Value")
        dim = canonical_dimension(key)
        if dim is not None:
            dim_filters.append((dim, value))
        elif key in METRIC_COLUMNS:
            relation = (first(query, f"{name}Relation") or "EQUAL").upper()
            if relation not in RELATIONS:
                raise ApiError(400, "INVALID_QUERY", f"Invalid filter relation: {relation}")
            try:
                number = float(value)
            except ValueError as exc:
                raise ApiError(400, "INVALID_QUERY", f"Invalid filter value: {value}") from exc
            metric_filters.append((key, relation, number))
        else:
            raise ApiError(400, "INVALID_QUERY", f"Invalid filter column: {key}", [key])
    return dim_filters, metric_filters


def parse_report_query(query: dict[str, list[str]]) -> tuple[ReportQuery, int, int]:
    """Validate a ``/report`` query string; return the normalised query, limit and offset."""
    tzc, start_utc, end_utc = parse_window(query)
    raw_groups = many(query, "groupBy") or ["campaign"]
    if len(raw_groups) > MAX_GROUP_LEVELS:
        raise ApiError(
            400,
            "INVALID_QUERY",
            f"At most {MAX_GROUP_LEVELS} grouping levels are supported",
            raw_groups,
        )
    dims: list[str] = []
    for raw in raw_groups:
        dim = canonical_dimension(raw)
        if dim is None:
            raise ApiError(400, "INVALID_QUERY", f"Invalid groupBy column: {raw}", [raw])
        if dim in dims:
            raise ApiError(400, "INVALID_QUERY", f"Duplicate groupBy column: {raw}", [raw])
        dims.append(dim)
    include = (first(query, "include") or "ACTIVE").upper()
    if include not in INCLUDE_VALUES:
        raise ApiError(400, "INVALID_QUERY", f"Invalid include value: {include}")
    mode = (first(query, "conversionTimeMode") or "VISIT").upper()
    if mode not in ("VISIT", "CONVERSION"):
        raise ApiError(400, "INVALID_QUERY", f"Invalid conversionTimeMode: {mode}")
    currency = (first(query, "currency") or "USD").upper()
    if currency not in CURRENCY_RATES:
        raise ApiError(400, "BAD_REQUEST", f"Unsupported currency: {currency}", [currency])
    workspaces = many(query, "workspaces")
    dim_filters, metric_filters = parse_filters(query)
    sortable = {f[0] for d in dims for f in DIM_FIELDS[d]} | set(METRIC_COLUMNS)
    sort, descending = parse_sort(query, sortable.__contains__)
    limit, offset = parse_paging(query, DEFAULT_LIMIT, MAX_LIMIT)
    q = ReportQuery(
        tz=tzc.name,
        start_utc=start_utc,
        end_utc=end_utc,
        dims=tuple(dims),
        include=include,
        mode=mode,
        currency=currency,
        workspaces=tuple(sorted(set(workspaces))) if workspaces else None,
        dim_filters=tuple(dim_filters),
        metric_filters=tuple(metric_filters),
        sort=sort,
        descending=descending,
    )
    return q, limit, offset
