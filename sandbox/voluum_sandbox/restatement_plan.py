"""A dataset's restatement plan: what changes in its past, and when (``restating.py`` draws it).

The plan's conversions (late postbacks, uploads) are ordinary conversion records of the dataset,
visible once the clock passes their postback time. Its cost changes (integrated cost replacing
estimates, manual cost updates, the CPA cost of planned conversions) are kept here as deltas per
event identity (``ev_uid``), each landing at an instant: an event's cost as of a clock position is
its generated cost plus the deltas landed before it.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Restatements:
    """The plan: JSON-ready ``items`` (by time) and the cost deltas (by landing time).

    Each item has ``kind`` (``late_postback``, ``upload``, ``integrated_cost``, ``manual_cost``),
    ``at`` (epoch seconds it becomes visible), ``time`` (ISO) and ``campaignId``, plus per kind:
    conversions ``clickId``, ``visit_ts``, ``conversionType``, ``revenue_cents``; cost changes
    ``days`` (UTC ``YYYY-MM-DD`` covered), ``before_cents`` and ``cost_cents`` (the range's
    USD cost before and after).
    """

    rate: float
    items: list[dict[str, Any]] = field(default_factory=list)
    cost_land: list[int] = field(default_factory=list)
    cost_uid: list[int] = field(default_factory=list)
    cost_delta: list[int] = field(default_factory=list)

    def landed(self, cut: int | None) -> int:
        """Number of cost deltas landed before ``cut`` (epoch s, exclusive; ``None`` = all)."""
        return len(self.cost_land) if cut is None else bisect.bisect_left(self.cost_land, cut)

    def costs(self, ev_cost: Sequence[int], uid_index: Sequence[int], landed: int) -> list[int]:
        """Per-event USD cost with the first ``landed`` deltas applied."""
        out = list(ev_cost)
        for uid, delta in zip(self.cost_uid[:landed], self.cost_delta[:landed], strict=True):
            out[uid_index[uid]] += delta
        return out

    def between(self, start_ts: int, end_ts: int) -> list[dict[str, Any]]:
        """Items visible from an instant in ``[start_ts, end_ts)`` (epoch seconds)."""
        return [item for item in self.items if start_ts <= item["at"] < end_ts]
