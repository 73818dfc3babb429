"""Opt-in "dialects": readings of the real Voluum API that public clients disagree on.

The notes (``voluum-api.md`` §9) list points where the real API may behave one way or another;
the tap must survive every reading.  A :class:`Dialects` value holds the readings a sandbox plays
(plus the ``lose_row_day`` knob) and wraps the endpoints they touch.  With no dialect and no
``lose_row_day`` every method is a pass-through, so the default behaviour is unchanged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from .catalog import canonical_dimension
from .columns import column_mappings
from .conversion_report import CONVERSION_SORTABLE, conversion_row
from .conversion_report import answer as conversion_answer
from .query import DEFAULT_LIMIT, ReportQuery, first, many
from .reports import ReportResult
from .responses import ApiError
from .timezones import tz_context

if TYPE_CHECKING:
    from .data import Dataset
    from .reports import ReportEngine

DIALECTS: tuple[str, ...] = (
    "changes_object",
    "evlog_newest_first",
    "evlog_epoch_only",
    "evlog_iso_only",
    "groupby_ids",
    "groupby_dashed",
    "sort_no_ids",
    "no_paging_echo",
    "page_cap",
    "strict_columns",
    "no_column_info",
    "hour_text",
    "visits_without_click_id",
    "flow_report_broken",
)
# Pairs that contradict each other (together they would refuse every value).
CONFLICTS: tuple[frozenset[str], ...] = (
    frozenset({"evlog_epoch_only", "evlog_iso_only"}),
    frozenset({"groupby_ids", "groupby_dashed"}),
)
PAGE_CAP = 50
EVENT_LOG_DEFAULT_LIMIT = 100
# groupBy spellings accepted for the three disputed dimensions, per dialect.
GROUPBY_SPELLINGS: dict[str, dict[str, frozenset[str]]] = {
    "groupby_ids": {
        "traffic-source": frozenset({"trafficSourceId", "traffic_source_id"}),
        "affiliate-network": frozenset({"affiliateNetworkId", "affiliate_network_id"}),
        "country": frozenset({"countryCode", "country_code", "country-code"}),
    },
    "groupby_dashed": {
        "traffic-source": frozenset({"traffic-source"}),
        "affiliate-network": frozenset({"affiliate-network"}),
        "country": frozenset({"country-code"}),
    },
}
_EPOCH_RE = re.compile(r"-?\d+")

Query = dict[str, list[str]]
Reshape = Callable[[ReportQuery, ReportResult], ReportResult]


# --------------------------------------------------------------------------- knob values


def parse_dialects(value: Any) -> frozenset[str]:
    """Validate a ``dialects`` knob value (``None``, a comma-joined string or a collection).

    Raises ``ValueError`` for unknown names and for contradictory pairs (see ``CONFLICTS``).
    """
    if value is None:
        return frozenset()
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",") if part.strip()]
    else:
        names = list(value)
    unknown = sorted({str(n) for n in names} - set(DIALECTS))
    if unknown:
        raise ValueError(f"unknown dialects: {unknown}; known: {', '.join(DIALECTS)}")
    chosen = frozenset(str(n) for n in names)
    for pair in CONFLICTS:
        if pair <= chosen:
            raise ValueError(f"dialects {sorted(pair)} contradict each other")
    return chosen


def parse_day(value: Any) -> str | None:
    """Validate a ``lose_row_day`` knob value: ``None``, a ``date`` or ``"YYYY-MM-DD"``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return date.fromisoformat(value.strip()).isoformat()
    raise ValueError(f"lose_row_day must be a date or 'YYYY-MM-DD', not {value!r}")


# --------------------------------------------------------------------------- helpers


def invalid_query(description: str, value: str) -> ApiError:
    """A 400 ``INVALID_QUERY`` error naming the offending value."""
    return ApiError(400, "INVALID_QUERY", description, [value])


def is_id_column(name: str) -> bool:
    """Whether a column is an id column (its name ends in ``Id`` or ``Code``)."""
    return name.endswith(("Id", "Code"))


def simple_changes(changes: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    """Flatten an event-log ``changes`` array into ``simpleChanges`` and ``nestedChanges``.

    Understands items of the flat reading ``{field|fieldName, oldValue, newValue}`` and items
    that already carry ``simpleChanges``/``nestedChanges`` (the Swagger-like shape).
    """
    simple: list[dict[str, Any]] = []
    nested: list[Any] = []
    items = changes if isinstance(changes, list) else []
    for item in items:
        if not isinstance(item, dict):
            continue
        if "simpleChanges" in item or "nestedChanges" in item:
            for sc in item.get("simpleChanges") or []:
                simple.append(
                    {
                        "fieldName": sc.get("fieldName", item.get("fieldName")),
                        "oldValue": sc.get("oldValue"),
                        "newValue": sc.get("newValue"),
                    }
                )
            nested.extend(item.get("nestedChanges") or [])
        else:
            simple.append(
                {
                    "fieldName": item.get("fieldName", item.get("field")),
                    "oldValue": item.get("oldValue"),
                    "newValue": item.get("newValue"),
                }
            )
    return simple, nested


def entry_id(seed: int, index: int, entry: dict[str, Any]) -> str:
    """A stable uuid-shaped id for event-log entry number ``index`` (oldest first)."""
    parts = (seed, index, entry.get("editTime"), entry.get("entityId"), entry.get("actionType"))
    raw = ":".join(map(str, parts))
    h = hashlib.sha256(raw.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def changes_as_object(entry: dict[str, Any], index: int, seed: int) -> dict[str, Any]:
    """The ``changes_object`` rendering of an entry: ``changes`` as one object, plus an ``id``."""
    out = dict(entry)
    changes = entry.get("changes")
    if not isinstance(changes, dict):
        simple, nested = simple_changes(changes)
        out["changes"] = {
            "category": entry.get("category"),
            "entityId": entry.get("entityId"),
            "fieldName": simple[0]["fieldName"] if simple else None,
            "nestedChanges": nested,
            "simpleChanges": simple,
        }
    own = entry.get("id")
    out["id"] = own if isinstance(own, str) and own else entry_id(seed, index, entry)
    return out


def capped_query(query: Query, default: int) -> tuple[Query, int | None]:
    """Serve at most ``PAGE_CAP`` rows: the query to run and the limit asked (``None`` = no cap).

    Unparsable or non-positive limits are left alone: the endpoint answers its own 400.
    """
    raw = first(query, "limit")
    try:
        asked = int(raw or default)
    except ValueError:
        return query, None
    if asked <= PAGE_CAP:
        return query, None
    return {**query, "limit": [str(PAGE_CAP)]}, asked


# --------------------------------------------------------------------------- the readings


class Dialects:
    """The readings a sandbox plays, and the endpoint wrappers that apply them.

    Args:
        names: dialect names (see ``DIALECTS``).
        lose_row_day: ``"YYYY-MM-DD"``: silently drop the first row of that day from
            campaign x day ``/report`` answers (``None`` = off).

    """

    def __init__(self, names: Iterable[str] = (), lose_row_day: Any = None) -> None:
        """Validate and store the readings."""
        self.names = parse_dialects(names)
        self.lose_row_day = parse_day(lose_row_day)
        # Rendered event logs per dataset (id): (source list, rendered list).
        self._logs: dict[int, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}

    def __contains__(self, name: object) -> bool:
        """Whether dialect ``name`` is played."""
        return name in self.names

    @property
    def active(self) -> bool:
        """Whether anything differs from the default behaviour."""
        return bool(self.names) or self.lose_row_day is not None

    # ------------------------------------------------------------------ /report

    def report(self, engine: ReportEngine, query: Query) -> dict[str, Any]:
        """Answer ``GET /report`` under these readings."""
        if not self.active:
            return engine.report(query)
        self.check_group_by(query)
        self.check_sort(query)
        if "strict_columns" in self:
            allowed = {c["key"] for c in column_mappings()}
            self.check_columns(query, allowed)
        asked = None
        if "page_cap" in self:
            query, asked = capped_query(query, DEFAULT_LIMIT)
        reshape = self.day_row_dropper(engine) if self.lose_row_day else None
        answer = engine.report(query, reshape=reshape)
        if "hour_text" in self:
            hour_as_text(answer["rows"])
        return self.paging_echo(answer, asked)

    def check_group_by(self, query: Query) -> None:
        """``groupby_ids``/``groupby_dashed`` spellings and ``flow_report_broken``."""
        spellings = next((GROUPBY_SPELLINGS[n] for n in GROUPBY_SPELLINGS if n in self), None)
        for raw in many(query, "groupBy"):
            dim = canonical_dimension(raw)
            if dim == "flow" and "flow_report_broken" in self:
                raise invalid_query(f"Invalid groupBy value '{raw}'", raw)
            if spellings is not None and dim in spellings and raw not in spellings[dim]:
                raise invalid_query(f"Invalid groupBy value '{raw}'", raw)

    def check_sort(self, query: Query) -> None:
        """``sort_no_ids``: sorting by an id column is refused."""
        sort = first(query, "sort")
        if "sort_no_ids" in self and sort and is_id_column(sort):
            raise invalid_query(f"Invalid sort column: {sort}", sort)

    @staticmethod
    def check_columns(query: Query, allowed: set[str]) -> None:
        """``strict_columns``: every ``columns``/``column`` value must be a known column."""
        for col in many(query, "columns", "column"):
            if col not in allowed:
                raise invalid_query(f"Invalid column '{col}'", col)

    def day_row_dropper(self, engine: ReportEngine) -> Reshape:
        """A result reshaper dropping the first ``lose_row_day`` row of campaign x day reports."""
        day = self.lose_row_day

        def reshape(q: ReportQuery, result: ReportResult) -> ReportResult:
            if len(q.dims) != 2 or set(q.dims) != {"campaign", "day"}:
                return result
            pos = q.dims.index("day")
            for i, key in enumerate(result.keys):
                if engine.dims.fields("day", key[pos])["day"] == day:
                    return drop_row(result, i)
            return result

        return reshape

    def paging_echo(self, answer: dict[str, Any], asked: int | None) -> dict[str, Any]:
        """Echo the asked limit (``page_cap``) or drop ``limit``/``offset`` (``no_paging_echo``)."""
        if asked is not None and "limit" in answer:
            answer["limit"] = asked
        if "no_paging_echo" in self:
            answer.pop("limit", None)
            answer.pop("offset", None)
        return answer

    # ------------------------------------------------------------------ /report/conversions

    def conversions(self, engine: ReportEngine, query: Query) -> dict[str, Any]:
        """Answer ``GET /report/conversions`` under these readings."""
        if not self.active:
            return conversion_answer(engine, query)
        self.check_sort(query)
        if "strict_columns" in self:
            self.check_columns(query, conversion_fields(engine))
        asked = None
        if "page_cap" in self:
            query, asked = capped_query(query, DEFAULT_LIMIT)
        return self.paging_echo(conversion_answer(engine, query), asked)

    # ------------------------------------------------------------------ other endpoints

    def column_info(self) -> list[dict[str, Any]]:
        """Items of ``GET /column/info`` (``no_column_info``: 404)."""
        if "no_column_info" in self:
            raise ApiError(404, "NOT_FOUND", "Resource /column/info was not found on this server")
        return column_mappings()

    def live_rows(self, kind: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows of ``/report/live/{kind}`` (``visits_without_click_id`` drops ``clickId``)."""
        if kind == "visits" and "visits_without_click_id" in self:
            for row in rows:
                row.pop("clickId", None)
        return rows

    def event_log_query(self, query: Query) -> Query:
        """The ``/event-log`` query to run: bounds checked, direction forced, limit capped."""
        if not self.active:
            return query
        for name in ("from", "to"):
            self.check_instant(first(query, name), name)
        if "evlog_newest_first" in self:
            query = {**query, "direction": ["DESC"]}
        if "page_cap" in self:
            query, _ = capped_query(query, EVENT_LOG_DEFAULT_LIMIT)
        return query

    def check_instant(self, value: str | None, name: str) -> None:
        """``evlog_epoch_only``/``evlog_iso_only``: refuse the other kind of bound."""
        if not value:
            return
        numeric = _EPOCH_RE.fullmatch(value.strip()) is not None
        if ("evlog_epoch_only" in self and not numeric) or ("evlog_iso_only" in self and numeric):
            raise ApiError(
                400, "BAD_REQUEST", f"Invalid time format of parameter '{name}': {value}", [value]
            )

    def event_log(self, ds: Dataset) -> list[dict[str, Any]]:
        """The event log as rendered (oldest first; ``changes_object`` reshapes every entry)."""
        source = ds.event_log
        if "changes_object" not in self:
            return source
        cached = self._logs.get(id(ds))
        if cached is None or cached[0] is not source or len(cached[1]) != len(source):
            cached = (source, [changes_as_object(e, i, ds.seed) for i, e in enumerate(source)])
            self._logs[id(ds)] = cached
        return cached[1]

    def event_log_answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        """Final ``/event-log`` body (``no_paging_echo``: no ``limit``/``offset`` keys)."""
        return self.paging_echo(answer, None) if self.active else answer


# --------------------------------------------------------------------------- rendering helpers


def drop_row(result: ReportResult, i: int) -> ReportResult:
    """A copy of ``result`` without row ``i``; ``totals`` still count it."""
    return ReportResult(
        dims=result.dims,
        keys=result.keys[:i] + result.keys[i + 1 :],
        columns=[col[:i] + col[i + 1 :] for col in result.columns],
        totals=result.totals,
        size=max(0, result.size - 1),
    )


def hour_as_text(rows: list[Any]) -> None:
    """``hour_text``: render the integer ``hour`` of report rows as ``"07:00"`` (in place)."""
    for row in rows:
        hour = getattr(row, "hour", None)
        if isinstance(hour, int):
            row.hour = f"{hour:02d}:00"


def conversion_fields(engine: ReportEngine) -> set[str]:
    """Field names of the ``/report/conversions`` rows the sandbox serves."""
    if engine.ds.n_conversions == 0:
        return set(CONVERSION_SORTABLE) | {"conversions", "creativeId"}
    return set(conversion_row(engine.ds, 0, tz_context("Etc/GMT"), "USD"))
