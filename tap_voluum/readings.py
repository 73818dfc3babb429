"""What one run has learned about how this Voluum API reads its parameters.

Public clients disagree on details of the real API (`../shared/voluum-api.md` §9): the
`groupBy` spelling of a dimension, whether `sort` may name an id column, whether a
`columns` value the account lacks is refused, whether the event log takes ISO or epoch
`from`/`to`. The tap starts from the most likely reading. When Voluum answers 400
`INVALID_QUERY`/`BAD_REQUEST` about a value (not about the time range: a range refused
says nothing of formats or spellings, `VoluumAPIError.refuses_range`), or
`PARAMETER_MISSING` about one the tap can add, the stream changes one of these parameters,
and what worked
is kept here for every stream of the run, so a refused reading costs a handful of requests
per run, not one per window.

What a run learned is also kept in the state (`snapshot`, beside the bookmarks; the layout
is `sdk_compat`'s), and the next run starts from it (`take_over`): a daily sync against an
account with id-style `groupBy` refuses nothing after its first run. A reading taken over
that Voluum refuses now is learned again as in a first run: every spelling is tried again,
the one in use first.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from tap_voluum.sdk_compat import READINGS_KEY, keep_tap_entry, tap_entry

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from singer_sdk import Tap

# A sort column Voluum may refuse in one reading (`campaignId`, `countryCode`, `clickId`).
_ID_COLUMN = re.compile(r"(Id|Code)$")
# After this many columns refused by name, the `columns` parameter is left out altogether.
MAX_NAMED_COLUMN_DROPS = 5
EVENT_LOG_TIME_FORMATS = ("iso", "epoch")


def mentions(text: str, value: str) -> bool:
    """Whether an error text names `value` as a whole word."""
    return re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text) is not None


@dataclass
class Readings:
    """The parameter readings of one run, shared by every stream and thread (thread-safe)."""

    column_keys: frozenset[str] | None = None
    """Columns `/column/info` listed; None when it did not answer."""

    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    version: int = 0
    """Bumped on every change, so a request built before a change is simply sent again."""

    on_change: Callable[[dict[str, Any]], None] | None = field(default=None, repr=False)
    """Called with the new `snapshot` after every change (to keep it in the state)."""

    _spelling: dict[str, str] = field(default_factory=dict)
    _learned: set[str] = field(default_factory=set)
    """Dimensions whose spelling this run chose (the others may be taken over)."""
    _confirmed: set[str] = field(default_factory=set)
    _refused_sorts: set[str] = field(default_factory=set)
    _id_sorts_refused: bool = False
    _refused_columns: set[str] = field(default_factory=set)
    _no_columns: set[str] = field(default_factory=set)
    event_log_time: str = EVENT_LOG_TIME_FORMATS[0]
    _widest_span: int | None = None
    event_log_sends_to: bool = False
    """Whether the event log's requests carry `to` (Voluum said it is required)."""

    # --- groupBy spellings -------------------------------------------------------------

    def spelling(self, name: str, spellings: Sequence[str]) -> str:
        """The `groupBy` value in use for a dimension (learned, taken over, or the first)."""
        spelling = self._spelling.get(name)
        return spelling if spelling is not None and spelling in spellings else spellings[0]

    def first_untried(self, name: str, spellings: Sequence[str]) -> int:
        """Index of the first spelling Voluum did not refuse in this run.

        A spelling taken over from an earlier run and refused now: all are tried again.
        """
        if name not in self._learned:
            return 0
        return spellings.index(self.spelling(name, spellings))

    def is_confirmed(self, name: str) -> bool:
        """Whether Voluum accepted the dimension's current spelling in this run."""
        return name in self._confirmed

    def use_spelling(self, name: str, spelling: str) -> None:
        """Keep the spelling Voluum accepted for the rest of the run (and the next runs)."""
        with self.lock:
            self._spelling[name] = spelling
            self._learned.add(name)
            self._confirmed.add(name)
            self._changed()

    def confirm(self, names: Iterable[str]) -> None:
        """Voluum answered a request grouped by these dimensions' current spellings."""
        with self.lock:
            self._confirmed.update(names)

    # --- sort --------------------------------------------------------------------------

    def sort(self, column: str | None) -> str | None:
        """`sort`, unless Voluum refused that column (or refuses sorting by ids)."""
        if column is None or column in self._refused_sorts:
            return None
        if self._id_sorts_refused and _ID_COLUMN.search(column):
            return None
        return column

    def refuse_sort(self, column: str) -> None:
        """Stop sorting by `column` (and by every id column, if it is one)."""
        with self.lock:
            self._refused_sorts.add(column)
            if _ID_COLUMN.search(column):
                self._id_sorts_refused = True
            self._changed()

    # --- columns -----------------------------------------------------------------------

    def columns(self, path: str, wanted: Iterable[str], *, listed_only: bool) -> list[str] | None:
        """`columns` for an endpoint: None to leave the parameter out.

        `listed_only` keeps only columns `/column/info` listed (for `/report`).
        """
        if path in self._no_columns:
            return None
        keys = self.column_keys if listed_only else None
        return [c for c in wanted if c not in self._refused_columns and (keys is None or c in keys)]

    def refuse_columns(self, path: str, named: Sequence[str]) -> None:
        """Drop the columns Voluum named, or the `columns` parameter once too many were."""
        with self.lock:
            if named and len(self._refused_columns) + len(named) <= MAX_NAMED_COLUMN_DROPS:
                self._refused_columns.update(named)
            else:
                self._no_columns.add(path)
            self._changed()

    def sends_columns(self, path: str) -> bool:
        """Whether `columns` is still sent to this endpoint."""
        return path not in self._no_columns

    # --- the span of a window ----------------------------------------------------------

    def widest_span(self) -> int | None:
        """The most local days Voluum takes in one request, once it refused a wider span."""
        return self._widest_span

    def refuse_span(self, days: int) -> int:
        """Voluum refused `days` days in one request: half as many at most from now on."""
        with self.lock:
            narrower = max(1, (days + 1) // 2)
            if self._widest_span is None or narrower < self._widest_span:
                self._widest_span = narrower
                self._changed()
            return self._widest_span

    # --- event log ---------------------------------------------------------------------

    def send_event_log_to(self) -> None:
        """Voluum wants the event log's `to`: send it from now on."""
        with self.lock:
            self.event_log_sends_to = True
            self._changed()

    def switch_event_log_time(self) -> str:
        """Use the other `from`/`to` format of the event log; return it."""
        with self.lock:
            formats = EVENT_LOG_TIME_FORMATS
            self.event_log_time = formats[(formats.index(self.event_log_time) + 1) % 2]
            self._changed()
            return self.event_log_time

    # --- kept across runs --------------------------------------------------------------

    def _changed(self) -> None:
        """A reading changed (the lock held): requests built before are sent again."""
        self.version += 1
        if self.on_change is not None:
            self.on_change(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """What this run knows, as the state keeps it (every field, defaults too)."""
        with self.lock:
            return {
                "group_by": dict(sorted(self._spelling.items())),
                "sort_refused": sorted(self._refused_sorts),
                "id_sorts_refused": self._id_sorts_refused,
                "columns_refused": sorted(self._refused_columns),
                "columns_left_out": sorted(self._no_columns),
                "event_log_time": self.event_log_time,
                "event_log_sends_to": self.event_log_sends_to,
                "widest_span_days": self._widest_span,
            }

    def take_over(self, kept: Any) -> list[str]:
        """Start from what an earlier run learned (`snapshot`); what was taken, said shortly.

        Anything malformed is left out: that reading is learned again.
        """
        if not isinstance(kept, dict):
            return []
        said: list[str] = []
        with self.lock:
            spellings = _texts(kept.get("group_by"), mapping=True)
            self._spelling.update(spellings)
            if spellings:
                said.append("groupBy " + ", ".join(f"{k}={v}" for k, v in spellings.items()))
            self._refused_sorts.update(_texts(kept.get("sort_refused")))
            self._id_sorts_refused = kept.get("id_sorts_refused") is True
            if self._refused_sorts or self._id_sorts_refused:
                ids = " (nor any id column)" if self._id_sorts_refused else ""
                said.append(f"no sort by {', '.join(sorted(self._refused_sorts))}{ids}")
            self._refused_columns.update(_texts(kept.get("columns_refused")))
            if self._refused_columns:
                said.append(f"columns left out: {', '.join(sorted(self._refused_columns))}")
            self._no_columns.update(_texts(kept.get("columns_left_out")))
            if self._no_columns:
                said.append(f"no columns parameter on {', '.join(sorted(self._no_columns))}")
            if kept.get("event_log_time") in EVENT_LOG_TIME_FORMATS:
                self.event_log_time = kept["event_log_time"]
            self.event_log_sends_to = kept.get("event_log_sends_to") is True
            if self.event_log_time != EVENT_LOG_TIME_FORMATS[0] or self.event_log_sends_to:
                to = " with `to`" if self.event_log_sends_to else ""
                said.append(f"event log times {self.event_log_time}{to}")
            span = kept.get("widest_span_days")
            if isinstance(span, int) and not isinstance(span, bool) and span >= 1:
                self._widest_span = span
                said.append(f"at most {span} days a request")
        return said


def _texts(value: Any, *, mapping: bool = False) -> Any:
    """The strings of a kept list (or the str -> str items of a kept mapping)."""
    if mapping:
        items = value.items() if isinstance(value, dict) else ()
        return {k: v for k, v in items if isinstance(k, str) and isinstance(v, str) and v}
    return {v for v in value if isinstance(v, str)} if isinstance(value, list) else set()


def keep_readings(tap: Tap, state: Mapping[str, Any] | None, readings: Readings) -> None:
    """Start from the readings of an earlier run's state; keep them in `tap`'s state.

    One INFO line says what was taken over (nothing: no line).
    """
    said = readings.take_over(tap_entry(state, READINGS_KEY))
    if said:
        tap.logger.info("what earlier runs learned of this Voluum, taken over: %s", "; ".join(said))
    keep_tap_entry(tap, READINGS_KEY, readings.snapshot())
    readings.on_change = partial(keep_tap_entry, tap, READINGS_KEY)
