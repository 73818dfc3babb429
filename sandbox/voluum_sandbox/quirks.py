"""Opt-in quirks of answers: odd value shapes, totals cents off, twin visits, event-log bounds.

Knobs (all off by default; with every one off each method is a pass-through):

- ``odd_shapes``: on every data endpoint, some text fields arrive as ``{code, name}`` /
  ``{id, name}`` objects, some as null or ``""``, some metrics as null (report ``totals``
  are left as they were).  Deterministic: the choice hangs on the row's position and the
  field's name.  A field that identifies a row (an id, a report's grouped dimension, a
  conversion's type, an event-log action) may become an object holding it, never null.
- ``cents_off_day``: ``/report`` answers whose range covers that local day carry totals
  whose ``revenue`` is 3 cents and ``cost`` 2 cents above the rows' sums (``profit`` one
  cent); every count is left equal.
- ``twin_visits``: ``/report/live/visits/{id}`` serves its newest visit twice, the two
  identical in every field, one after the other.
- ``clock_behind``: seconds the sandbox's clock runs behind the caller's: an ``/event-log``
  ``from`` later than the sandbox's now (its default ``to``), or a ``to`` before ``from``,
  is a 400 ``BAD_REQUEST`` "Invalid time range: 'to' must not be before 'from'".
- ``event_log_requires_to``: ``/event-log`` without ``to`` is a 400 ``PARAMETER_MISSING``.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from .catalog import KEY_FIELD, canonical_dimension
from .dialects import parse_day
from .query import first, many, parse_hour_time
from .responses import ApiError

QUIRK_KNOBS = (
    "odd_shapes",
    "cents_off_day",
    "twin_visits",
    "clock_behind",
    "event_log_requires_to",
)
ODD_SHAPES = 5  # one field in five arrives as an object, one as null, one as ""
_OBJECT, _NULL, _EMPTY = 0, 1, 2
NEVER_TOUCHED = frozenset(
    {"day", "hour", "timestamp", "postbackTimestamp", "visitTimestamp", "editTime", "changes"}
    | {"createdTime", "updatedTime", "deleted", "key", "type", "tags", "totals", "country"}
)
CONVERSION_KEYS = frozenset({"clickId", "conversionType"})
EVENT_LOG_KEYS = frozenset({"entityId", "actionType"})
Query = dict[str, list[str]]


def odd_object(field: str, value: str) -> dict[str, str]:
    """``value`` wrapped the way a client may meet it: ``{id, name}`` or ``{code, name}``."""
    if field == "id" or field.endswith("Id"):
        return {"id": value, "name": f"{value} (name)"}
    if field == "code" or field.endswith("Code"):
        return {"code": value, "name": f"{value} (name)"}
    return {"code": value[:3].upper(), "name": value}


def odd_value(  # noqa: PLR0911
    where: int, field: str, value: Any, *, key: bool, objects: bool = True, nested: bool = True
) -> Any:
    """The odd shape of one value of row ``where``, or the value as it was.

    Over five rows in a row, each field takes each shape once (the order hangs on its name).
    """
    if field in NEVER_TOUCHED or isinstance(value, bool):
        return value
    pick = (zlib.crc32(field.encode()) + where) % ODD_SHAPES
    if isinstance(value, str) and value:
        if pick == _OBJECT and objects:
            return odd_object(field, value)
        if pick == _NULL and not key:
            return None
        if pick == _EMPTY and not key:
            return ""
    elif isinstance(value, (int, float)) and pick == _NULL and not key:
        return None
    elif isinstance(value, dict) and not key and nested:
        # One level down (`workspace`, `costModel`...); free-form objects deeper stay as sent.
        return odd_mapping(where + 1, value, frozenset({"id"}), objects=objects, nested=False)
    return value


def odd_mapping(
    where: int,
    item: dict[str, Any],
    keys: frozenset[str],
    *,
    objects: bool = True,
    nested: bool = True,
) -> dict[str, Any]:
    """A copy of ``item`` with odd shapes (``keys`` are never null or empty)."""
    return {
        field: odd_value(where, field, value, key=field in keys, objects=objects, nested=nested)
        for field, value in item.items()
    }


def _span(query: Query) -> tuple[datetime, datetime] | None:
    raw_from, raw_to = first(query, "from"), first(query, "to")
    if not raw_from or not raw_to:
        return None  # the endpoint answers its own 400
    try:
        return parse_hour_time(raw_from, "from"), parse_hour_time(raw_to, "to")
    except ApiError:
        return None


@dataclass(frozen=True)
class Quirks:
    """The quirks a sandbox plays (see the module docstring)."""

    odd_shapes: bool = False
    cents_off_day: str | None = None
    twin_visits: bool = False
    clock_behind: float = 0.0
    event_log_requires_to: bool = False

    def configured(self, **knobs: Any) -> Quirks:
        """A copy with the given knobs changed (validated)."""
        changes: dict[str, Any] = {}
        for name in ("odd_shapes", "twin_visits", "event_log_requires_to"):
            if name in knobs:
                changes[name] = bool(knobs[name])
        if "cents_off_day" in knobs:
            changes["cents_off_day"] = parse_day(knobs["cents_off_day"])
        if "clock_behind" in knobs:
            changes["clock_behind"] = max(0.0, float(knobs["clock_behind"] or 0.0))
        return replace(self, **changes)

    # ------------------------------------------------------------------ /report, conversions

    def report(self, query: Query, answer: dict[str, Any]) -> dict[str, Any]:
        """A ``/report`` answer with the quirks played."""
        if self.cents_off_day:
            self._cents_off(query, answer.get("totals"))
        if self.odd_shapes:
            dims = [canonical_dimension(g) for g in many(query, "groupBy")] or ["campaign"]
            keys = frozenset(KEY_FIELD[d] for d in dims if d in KEY_FIELD)
            offset = int(first(query, "offset") or 0)
            for i, row in enumerate(answer.get("rows") or ()):
                where = offset + i
                for field in row.__struct_fields__:
                    value = getattr(row, field)
                    odd = odd_value(where, field, value, key=field in keys)
                    if odd is not value:
                        setattr(row, field, odd)
        return answer

    def _cents_off(self, query: Query, totals: Any) -> None:
        span = _span(query)
        if not span or not isinstance(totals, dict) or self.cents_off_day is None:
            return
        day = datetime.combine(date.fromisoformat(self.cents_off_day), datetime.min.time())
        if span[0] < day + timedelta(days=1) and span[1] > day:
            for metric, cents in (("revenue", 3), ("cost", 2), ("profit", 1)):
                if isinstance(totals.get(metric), (int, float)):
                    totals[metric] = round(totals[metric] + cents / 100, 2)

    def conversions(self, query: Query, answer: dict[str, Any]) -> dict[str, Any]:
        """A ``/report/conversions`` answer with the quirks played."""
        if self.odd_shapes:
            offset = int(first(query, "offset") or 0)
            answer["rows"] = [
                odd_mapping(offset + i, row, CONVERSION_KEYS)
                for i, row in enumerate(answer.get("rows") or ())
            ]
        return answer

    # ------------------------------------------------------------------ other endpoints

    def items(self, what: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Entity lists, workspaces and the column dictionary (labels: null or "" only)."""
        if not self.odd_shapes:
            return items
        objects = what != "column-info"
        return [
            odd_mapping(i, item, frozenset({"id"}), objects=objects) for i, item in enumerate(items)
        ]

    def live_rows(self, kind: str, rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
        """Rows of ``/report/live/{kind}``: twin visits, odd shapes."""
        if self.odd_shapes:
            keys = frozenset({"clickId"} if kind == "clicks" else ())
            rows = [odd_mapping(i, row, keys) for i, row in enumerate(rows)]
        if self.twin_visits and kind == "visits" and rows:
            rows.insert(1, dict(rows[0]))
            del rows[limit:]
        return rows

    def check_event_log(self, query: Query, lo: int | None, hi: int | None) -> None:
        """``event_log_requires_to`` and ``clock_behind`` on ``/event-log`` bounds (epoch ms)."""
        if self.event_log_requires_to and not first(query, "to"):
            raise ApiError(400, "PARAMETER_MISSING", "Missing required parameter: to", ["to"])
        if not self.clock_behind or lo is None:
            return
        now = int((time.time() - self.clock_behind) * 1000)
        if lo > (now if hi is None else hi):
            raise ApiError(400, "BAD_REQUEST", "Invalid time range: 'to' must not be before 'from'")

    def event_log(self, entries: list[dict[str, Any]], offset: int) -> list[dict[str, Any]]:
        """Entries of an ``/event-log`` page with odd shapes."""
        if not self.odd_shapes:
            return entries
        return [odd_mapping(offset + i, entry, EVENT_LOG_KEYS) for i, entry in enumerate(entries)]
