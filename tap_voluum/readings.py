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
per run, not one per window (`remedies.Remedies` makes the changes). Why it earns its lines:
every reading of `../shared/voluum-api.md` §9-§11 gives the same records.

Each run learns again: a refused reading costs a refused request and, for a `groupBy`
spelling, one-row probes (a handful of requests per run), which is not worth a state key.
`snapshot` says what the run settled on.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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

    _spelling: dict[str, str] = field(default_factory=dict)
    _confirmed: set[str] = field(default_factory=set)
    _refused_sorts: set[str] = field(default_factory=set)
    _id_sorts_refused: bool = False
    _refused_columns: set[str] = field(default_factory=set)
    _no_columns: set[str] = field(default_factory=set)
    event_log_time: str = EVENT_LOG_TIME_FORMATS[0]
    _widest_span: int | None = None
    event_log_sends_to: bool = False
    """Whether the event log's requests carry `to` (Voluum said it is required)."""
    page_served: int | None = None
    """Rows Voluum served in a page short of what was asked while more were left (its cap)."""

    # --- groupBy spellings -------------------------------------------------------------

    def spelling(self, name: str, spellings: Sequence[str]) -> str:
        """The `groupBy` value in use for a dimension (learned, or the first)."""
        spelling = self._spelling.get(name)
        return spelling if spelling is not None and spelling in spellings else spellings[0]

    def first_untried(self, name: str, spellings: Sequence[str]) -> int:
        """Index of the first spelling Voluum did not refuse in this run."""
        if name not in self._spelling:
            return 0
        return spellings.index(self.spelling(name, spellings))

    def is_confirmed(self, name: str) -> bool:
        """Whether Voluum accepted the dimension's current spelling in this run."""
        return name in self._confirmed

    def use_spelling(self, name: str, spelling: str) -> None:
        """Keep the spelling Voluum accepted for the rest of the run."""
        with self.lock:
            self._spelling[name] = spelling
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

    # --- what the run settled on -------------------------------------------------------

    def served(self, rows: int) -> None:
        """Voluum served `rows` rows where more were asked and left: its page cap."""
        with self.lock:
            self.page_served = max(self.page_served or 0, rows)

    def _changed(self) -> None:
        """A reading changed (the lock held): requests built before are sent again."""
        self.version += 1

    def snapshot(self) -> dict[str, Any]:
        """What this run knows (every field, defaults too)."""
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
                "page_served": self.page_served,
            }
