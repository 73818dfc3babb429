"""Reconciliation: every report window's rows, added up, against Voluum's own `totals`.

Each `/report` answer carries `totals` over the whole query (every page), so the tap can
check what it wrote: counts must match exactly, money within a cent. Ratios (roi, ctr,
...) are not summable and are not compared. A metric that is null in a row is absent, not
0: the window's sum of it is unknown, so that metric is not compared in that window (said
once per stream, counted in the summary). Setting `reconcile`: `warn` (one WARNING
line per window that does not add up, records still written), `fail` (the stream stops
before that window's STATE, as an unrecoverable stream does) or `off`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tap_voluum.errors import StreamFailure
from tap_voluum.streams.dimensions import CUSTOM_SLOTS

if TYPE_CHECKING:
    import logging
    from collections.abc import Iterable, Mapping

SUMMABLE_COUNTS = (
    "visits",
    "clicks",
    "conversions",
    *(f"customConversions{n}" for n in range(1, CUSTOM_SLOTS + 1)),
)
SUMMABLE_MONEY = ("revenue", "cost", *(f"customRevenue{n}" for n in range(1, CUSTOM_SLOTS + 1)))
CENT = 0.01
MODES = ("warn", "fail", "off")


class Reconciler:
    """Adds up one window's rows at a time and compares them with Voluum's totals."""

    def __init__(
        self, stream: str, fields: Iterable[str], mode: str, logger: logging.Logger
    ) -> None:
        wanted = set(fields)
        self.stream = stream
        self.counts = tuple(m for m in SUMMABLE_COUNTS if m in wanted)
        self.money = tuple(m for m in SUMMABLE_MONEY if m in wanted)
        self.mode = mode if self.counts or self.money else "off"
        self.logger = logger
        self.windows = 0
        self.mismatches = 0
        self.without_totals = 0
        self.unknown = 0
        """Metrics left uncompared in a window because a row held null."""
        self._counts: dict[str, int] = {}
        self._money: dict[str, list[float]] = {}
        self._nulls: set[str] = set()

    @property
    def enabled(self) -> bool:
        """Whether windows are reconciled at all."""
        return self.mode != "off"

    def start_window(self) -> None:
        """Forget the previous window's sums."""
        self._counts = dict.fromkeys(self.counts, 0)
        self._money = {m: [] for m in self.money}
        self._nulls = set()

    def add(self, record: Mapping[str, object]) -> None:
        """Count one written record (a null metric makes that metric unknown this window)."""
        for metric in self.counts:
            value = record.get(metric)
            if isinstance(value, (int, float)):
                self._counts[metric] += int(value)
            elif value is None and metric in record:
                self._nulls.add(metric)
        for metric in self.money:
            value = record.get(metric)
            if isinstance(value, (int, float)):
                self._money[metric].append(float(value))
            elif value is None and metric in record:
                self._nulls.add(metric)

    def add_nulls(self, metrics: Iterable[str]) -> None:
        """Metrics some row of this window held as null: not compared in this window."""
        self._nulls.update(metrics)

    def matches(self, totals: Mapping[str, object] | None) -> bool:
        """Whether the window's sums agree with `totals` (no totals: nothing to disagree)."""
        return totals is None or not self._differences(totals)[0]

    def check(self, day: str, totals: Mapping[str, object] | None) -> None:
        """Compare the window's sums with `totals`; warn or fail on a difference."""
        if totals is None:
            if not self.without_totals:
                self.logger.info(
                    "%s: Voluum's answers carry no totals: windows are not reconciled", self.stream
                )
            self.without_totals += 1
            return
        self.windows += 1
        if self._nulls:
            if not self.unknown:
                self.logger.info(
                    "%s: window %s: rows hold null %s: not compared with Voluum's totals",
                    self.stream,
                    day,
                    ", ".join(sorted(self._nulls)),
                )
            self.unknown += len(self._nulls)
        ours, theirs = self._differences(totals)
        if not ours:
            return
        self.mismatches += 1
        message = (
            f"{self.stream}: window {day}: rows add up to {', '.join(ours)} "
            f"but Voluum's totals say {', '.join(theirs)}"
        )
        if self.mode == "fail":
            raise StreamFailure(message + " (reconcile=fail)")
        self.logger.warning("%s", message)

    def _differences(self, totals: Mapping[str, object]) -> tuple[list[str], list[str]]:
        ours: list[str] = []
        theirs: list[str] = []
        nulls = self._nulls
        for metric, count in self._counts.items():
            total = totals.get(metric)
            if metric in nulls:
                continue
            if isinstance(total, (int, float)) and count != total:
                ours.append(f"{metric}={count}")
                theirs.append(f"{metric}={_number(total)}")
        for metric, values in self._money.items():
            total = totals.get(metric)
            if metric in nulls:
                continue
            summed = math.fsum(values)
            if isinstance(total, (int, float)) and abs(summed - total) > CENT + 1e-9:
                ours.append(f"{metric}={summed:.2f}")
                theirs.append(f"{metric}={_number(total)}")
        return ours, theirs

    def summary(self) -> None:
        """One INFO line at the end of the stream."""
        if self.enabled and self.windows:
            self.logger.info(
                "%s: %d window%s reconciled with Voluum's totals, %d mismatches%s",
                self.stream,
                self.windows,
                "" if self.windows == 1 else "s",
                self.mismatches,
                f" ({self.unknown} metrics left out for null values)" if self.unknown else "",
            )


def _number(value: float) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}"
    return str(int(value))
