"""What a windowed stream changes when Voluum refuses one of its parameter readings.

A 400 about a value (`VoluumAPIError.is_refused_parameter`) names, or hints at, what it
refuses: the `sort` column, a `columns` value, a `groupBy` spelling. `Remedies.apply`
tries the change the error text points at first, then the others; each one changes the
run's `Readings` (never the stream), so every stream and window built after it asks the
way Voluum answers. False when nothing is left to change: the stream then fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from tap_voluum.errors import StreamFailure, VoluumAPIError
from tap_voluum.readings import mentions

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterable, Sequence

    from tap_voluum.readings import Readings
    from tap_voluum.streams.dimensions import Dimension

    Probe = Callable[[str], bool]
    """Whether Voluum accepts `groupBy=<spelling>` (a one-row request of that alone)."""


class Asking(Protocol):
    """A stream whose requests may be refused (`WindowedStream`)."""

    name: str
    path: str

    @property
    def run(self) -> _HasReadings:
        """The run, holding its readings."""

    @property
    def logger(self) -> logging.Logger:
        """The tap's logger."""


class _HasReadings(Protocol):
    readings: Readings


class Remedies:
    """The changes of reading one stream may make after a refused parameter."""

    def __init__(
        self,
        readings: Readings,
        *,
        name: str,
        path: str,
        logger: logging.Logger,
        protected: frozenset[str],
        dimensions: Sequence[Dimension] = (),
    ) -> None:
        self.readings = readings
        self.name = name
        self.path = path
        self.logger = logger
        self.protected = protected
        """Columns never dropped on a hint (keys, time levels, dimension fields)."""
        self.dimensions = tuple(dimensions)
        """The report's dimensions, whose `groupBy` spellings may be refused."""

    @classmethod
    def of(
        cls, stream: Asking, *, protected: Iterable[str], dimensions: Sequence[Dimension] = ()
    ) -> Remedies:
        """The remedies of a stream's requests (its name, endpoint and log, the run's readings)."""
        return cls(
            stream.run.readings,
            name=stream.name,
            path=stream.path,
            logger=stream.logger,
            protected=frozenset(protected),
            dimensions=dimensions,
        )

    def apply(self, params: dict[str, Any], exc: VoluumAPIError, probe: Probe) -> bool:
        """Change one refused reading, the one the error text points at first."""
        text = exc.detail
        sort_named = "sort" in text.lower()
        columns_named = bool(self.named_columns(params, text))
        order = [self.drop_sort, self.drop_columns]
        if columns_named and not sort_named:
            order.reverse()
        if self.dimensions:
            points_elsewhere = sort_named or columns_named
            order = [*order, self.respell] if points_elsewhere else [self.respell, *order]
        return any(change(params, exc, probe) for change in order)

    def accepted(self) -> None:
        """Voluum answered: the dimensions' spellings hold for the rest of the run."""
        self.readings.confirm(d.group_by for d in self.dimensions)

    def named_columns(self, params: dict[str, Any], text: str) -> list[str]:
        """Requested columns an error text names (keys and the sort column excepted)."""
        protected = self.protected | {params.get("sort")}
        return [c for c in params.get("columns") or () if c not in protected and mentions(text, c)]

    def drop_sort(self, params: dict[str, Any], exc: VoluumAPIError, probe: Probe) -> bool:
        """Read without `sort` (pages are then checked for repeats and gaps)."""
        sort = params.get("sort")
        if not sort:
            return False
        self.readings.refuse_sort(sort)
        self.note(exc, f"reading without sort={sort} from now on")
        return True

    def drop_columns(self, params: dict[str, Any], exc: VoluumAPIError, probe: Probe) -> bool:
        """Leave out the columns Voluum named, or the `columns` parameter altogether."""
        if not params.get("columns"):
            return False
        named = self.named_columns(params, exc.detail)
        self.readings.refuse_columns(self.path, named)
        if self.readings.sends_columns(self.path):
            self.note(exc, f"leaving out columns {', '.join(named)} from now on")
        else:
            self.note(exc, "leaving out the columns parameter from now on")
        return True

    def respell(self, params: dict[str, Any], exc: VoluumAPIError, probe: Probe) -> bool:
        """Find a spelling Voluum accepts for each dimension not yet confirmed.

        Each candidate is tried alone in a one-row request (`probe`), so the answer speaks
        of that dimension only. True when a spelling changed; a dimension Voluum refuses
        in every spelling fails the stream.
        """
        readings = self.readings
        dims = [d for d in self.dimensions if not readings.is_confirmed(d.group_by)]
        dims.sort(
            key=lambda d: not mentions(exc.detail, readings.spelling(d.group_by, d.candidates))
        )
        for dim in dims:
            current = readings.spelling(dim.group_by, dim.candidates)
            named = mentions(exc.detail, current)  # the answer names it: no need to ask again
            spelling = self.accepted_spelling(dim, current, probe, skip_current=named)
            readings.use_spelling(dim.group_by, spelling)
            if spelling != current:
                self.note(exc, f"groupBy={spelling} from now on")
                return True
        return False

    def accepted_spelling(
        self, dim: Dimension, current: str, probe: Probe, *, skip_current: bool
    ) -> str:
        """The first spelling Voluum accepts, the one in use first (unless it was named)."""
        start = self.readings.first_untried(dim.group_by, dim.candidates)
        rest = [c for c in dim.candidates[start:] if c != current]
        for spelling in rest if skip_current else [current, *rest]:
            if probe(spelling):
                return spelling
        tried = ", ".join(dict.fromkeys([current, *rest]))
        msg = f"Voluum refuses to group by {dim.group_by} (groupBy tried: {tried})"
        raise StreamFailure(msg)

    def note(self, exc: VoluumAPIError, change: str) -> None:
        """One INFO line per change of reading (a change holds for the rest of the run)."""
        self.logger.info("%s: Voluum refused a parameter (%s); %s", self.name, exc, change)
