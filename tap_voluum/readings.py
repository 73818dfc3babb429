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
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

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

    _spelling: dict[str, int] = field(default_factory=dict)
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
        """The `groupBy` value in use for a dimension."""
        return spellings[self._spelling.get(name, 0)]

    def is_confirmed(self, name: str) -> bool:
        """Whether Voluum accepted the dimension's current spelling in this run."""
        return name in self._confirmed

    def use_spelling(self, name: str, index: int) -> None:
        """Keep the spelling Voluum accepted for the rest of the run."""
        with self.lock:
            self._spelling[name] = index
            self._confirmed.add(name)
            self.version += 1

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
            self.version += 1

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
            self.version += 1

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
                self.version += 1
            return self._widest_span

    # --- event log ---------------------------------------------------------------------

    def send_event_log_to(self) -> None:
        """Voluum wants the event log's `to`: send it from now on."""
        with self.lock:
            self.event_log_sends_to = True
            self.version += 1

    def switch_event_log_time(self) -> str:
        """Use the other `from`/`to` format of the event log; return it."""
        with self.lock:
            formats = EVENT_LOG_TIME_FORMATS
            self.event_log_time = formats[(formats.index(self.event_log_time) + 1) % 2]
            self.version += 1
            return self.event_log_time


@dataclass
class SyncRun:
    """What the streams of one tap share besides HTTP: readings learned, streams failed."""

    readings: Readings = field(default_factory=Readings)
    failures: dict[str, str] = field(default_factory=dict)
    notices: set[str] = field(default_factory=set)
    """Run-wide notices already logged (`stamps`: rows a changed setting leaves behind)."""

    def summary(self) -> str:
        """One line naming every failed stream and why."""
        parts = "; ".join(f"{name} ({why})" for name, why in self.failures.items())
        count = len(self.failures)
        return f"{count} stream{'s' if count > 1 else ''} failed: {parts}"
