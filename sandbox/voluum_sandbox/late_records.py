"""Late records: new events, conversion records and event-log entries for ``late.py``.

How they are built, placed in time, and merged into a dataset's columns in place.
"""

from __future__ import annotations

import bisect
import random
from typing import TYPE_CHECKING, Any

from .catalog import (
    CATEGORY,
    CONVERSION_TYPES,
    COUNTRIES,
    CV2_VALUES,
    CV3_VALUES,
    ENTITY_DIMS,
    OPERATING_SYSTEMS,
    TYPE_CUMULATIVE,
)
from .formats import iso_ms, random_uuid

if TYPE_CHECKING:
    from .data import Dataset

MIN_CLICK_AGE = 30  # seconds between a visit and the earliest postback on it (as generated)
_EVENT_COLUMNS = (
    "ev_ts",
    "ev_c",
    "ev_o",
    "ev_l",
    "ev_country",
    "ev_os",
    "ev_br",
    "ev_cv1",
    "ev_cv2",
    "ev_cv3",
    "ev_visits",
    "ev_uv",
    "ev_clicks",
    "ev_conv",
    "ev_errors",
    "ev_impr",
    "ev_cost",
    "ev_rev",
    "ev_uid",
)
_CONVERSION_COLUMNS = ("cv_event", "cv_click", "cv_type", "cv_post", "cv_rev")


def instants(
    rng: random.Random, n: int, at_ms: int, until_ms: int | None, cap_ms: int | None
) -> list[int]:
    """``n`` instants (epoch ms) at or after ``at_ms`` following the slot rule, below ``cap_ms``."""
    second_end = (at_ms // 1000 + 1) * 1000
    hour_end = (at_ms // 3_600_000 + 1) * 3_600_000

    def below(limit: int) -> int:
        return limit if cap_ms is None else min(limit, cap_ms)

    out = []
    for k in range(n):
        slot = k % 4
        if slot == 0:
            t = at_ms
        elif slot == 1:
            hi = below(second_end)
            t = rng.randrange(at_ms + 1, hi) if at_ms + 1 < hi else at_ms
        elif slot == 2 or until_ms is None:
            t = rng.randrange(at_ms, max(at_ms + 1, below(hour_end)))
        else:
            t = rng.randrange(at_ms, max(at_ms + 1, below(until_ms)))
        out.append(t)
    return sorted(out)


def conversion_type(rng: random.Random) -> int:
    """A conversion type index drawn with the generator's weights."""
    r = rng.random()
    t = 0
    while r >= TYPE_CUMULATIVE[t]:
        t += 1
    return t


class ClickPicker:
    """Finds clicks without a conversion, visited in a window before a postback."""

    def __init__(self, ds: Dataset, campaigns: list[int], max_age: int, rng: random.Random) -> None:
        self.ds = ds
        self.allowed = set(campaigns)
        self.max_age = max_age
        self.rng = rng
        self.taken: dict[int, set[int]] = {}

    def _spare(self, event: int) -> int | None:
        """The lowest click of ``event`` that has no conversion yet (``None`` when none)."""
        ds = self.ds
        if ds.ev_c[event] not in self.allowed:
            return None
        used = self.taken.get(event)
        if used is None:
            lo, hi = ds.conversion_range_by_event(event, event + 1)
            used = self.taken[event] = set(ds.cv_click[lo:hi])
        for j in range(ds.ev_clicks[event]):
            if j not in used:
                return j
        return None

    def pick(self, post: int) -> tuple[int, int]:
        """``(event, click)`` of a spare click visited in ``[post - max_age, post - 30]``."""
        ds = self.ds
        lo = bisect.bisect_left(ds.ev_ts, post - self.max_age)
        hi = bisect.bisect_right(ds.ev_ts, post - MIN_CLICK_AGE)
        if hi > lo:
            for _ in range(64):  # random probes first, then a full scan
                event = self.rng.randrange(lo, hi)
                j = self._spare(event)
                if j is not None:
                    self.taken[event].add(j)
                    return event, j
            spare = [e for e in range(lo, hi) if self._spare(e) is not None]
            if spare:
                event = self.rng.choice(spare)
                j = self._spare(event)
                assert j is not None
                self.taken[event].add(j)
                return event, j
        raise ValueError(
            f"no click without a conversion visited between {iso_ms((post - self.max_age) * 1000)}"
            f" and {iso_ms((post - MIN_CLICK_AGE) * 1000)} on the allowed campaigns"
        )


def new_event(ds: Dataset, rng: random.Random, c: int, ts: int, n_visits: int) -> dict[str, int]:
    """Column values of one new traffic event of campaign ``c`` at ``ts``."""
    flow = ds.camp_flow[c]
    osi = rng.randrange(len(OPERATING_SYSTEMS))
    clicks = rng.randint(1, n_visits)
    kind, value = ds.camp_cost[c]
    impressions = n_visits * (8 + rng.randrange(5)) if kind == "CPM" else 0
    cost = (
        n_visits * value if kind == "CPC" else impressions * value // 1000 if kind == "CPM" else 0
    )
    return {
        "ev_ts": ts,
        "ev_c": c,
        "ev_o": rng.choice(ds.flow_offers[flow]),
        "ev_l": rng.choice(ds.flow_landers[flow]),
        "ev_country": ds.camp_country[c] if rng.random() < 0.8 else rng.randrange(len(COUNTRIES)),
        "ev_os": osi,
        "ev_br": rng.choice(OPERATING_SYSTEMS[osi][4]),
        "ev_cv1": rng.randrange(ds.n_zones),
        "ev_cv2": rng.randrange(len(CV2_VALUES)),
        "ev_cv3": rng.randrange(len(CV3_VALUES)),
        "ev_visits": n_visits,
        "ev_uv": n_visits,
        "ev_clicks": clicks,
        "ev_conv": 0,
        "ev_errors": 0,
        "ev_impr": impressions,
        "ev_cost": cost,
        "ev_rev": 0,
    }


def insert_events(ds: Dataset, new: list[dict[str, int]]) -> tuple[list[int], list[int]]:
    """Merge new events (sorted by time) into the columns in place; remap conversions.

    Each goes after the events of its second. Returns the new index of each inserted event and
    the insertion positions (old event ``i`` moves to ``i + bisect_right(positions, i)``).
    """
    if not new:
        return [], []
    positions = [bisect.bisect_right(ds.ev_ts, ev["ev_ts"]) for ev in new]
    merged: dict[str, list[int]] = {name: [] for name in _EVENT_COLUMNS}
    indexes = []
    prev = 0
    for pos, ev in zip(positions, new, strict=True):
        for name in _EVENT_COLUMNS:
            merged[name].extend(getattr(ds, name)[prev:pos])
        indexes.append(len(merged["ev_ts"]))
        for name in _EVENT_COLUMNS:
            merged[name].append(ev[name])
        prev = pos
    for name in _EVENT_COLUMNS:
        merged[name].extend(getattr(ds, name)[prev:])
        getattr(ds, name)[:] = merged[name]  # in place: other tables hold these lists
    # Old event i moves up by the number of new events inserted at or before it.
    ds.cv_event[:] = [e + bisect.bisect_right(positions, e) for e in ds.cv_event]
    return indexes, positions


def insert_conversion(
    ds: Dataset, event: int, click: int, *, type_index: int, post: int, pct: int
) -> tuple[int, int]:
    """Add one conversion record (kept grouped by event) and update its event's sums.

    Revenue as generated: offer payout x type factor x ``pct`` %. Returns the revenue and the
    cost added (the CPA cost on CPA campaigns), in USD cents.
    """
    c = ds.ev_c[event]
    rev = ds.offer_payout[ds.ev_o[event]] * CONVERSION_TYPES[type_index][3] * pct // 10_000
    pos = bisect.bisect_right(ds.cv_event, event)
    for name, value in zip(_CONVERSION_COLUMNS, (event, click, type_index, post, rev), strict=True):
        getattr(ds, name).insert(pos, value)
    ds.ev_conv[event] += 1
    ds.ev_rev[event] += rev
    kind, cpa = ds.camp_cost[c]
    extra_cost = cpa if kind == "CPA" else 0
    ds.ev_cost[event] += extra_cost
    return rev, extra_cost


def plan_entries(
    ds: Dataset, rng: random.Random, n: int, *, at_ms: int, until_ms: int | None, call: int
) -> list[tuple[str, dict[str, Any]]]:
    """``n`` CHANGE entries on active entities, at the instants of the slot rule."""
    candidates = [
        (kind, e)
        for kind in ENTITY_DIMS
        for e in ds.raw_entities(kind)
        if not e.get("deleted", False)
    ]
    client_id = ds.event_log[0]["clientId"] if ds.event_log else random_uuid(rng)
    planned = []
    for k, when in enumerate(instants(rng, n, at_ms, until_ms, None)):
        kind, ent = rng.choice(candidates)
        user = rng.choice(ds.users)
        category = CATEGORY[kind]
        note = f"late note {call}.{k}"  # distinct changes: distinct entries, even in one ms
        entry = {
            "id": random_uuid(rng),
            "clientId": client_id,
            "editTime": when,
            "actionType": "CHANGE",
            "category": category,
            "entityId": ent["id"],
            "entityName": ent["name"],
            "userId": user["id"],
            "userName": user["name"],
            "changes": [
                {
                    "category": category,
                    "entityId": ent["id"],
                    "fieldName": "notes",
                    "nestedChanges": [],
                    "simpleChanges": [
                        {
                            "category": category,
                            "fieldName": "notes",
                            "newEntityId": None,
                            "newValue": note,
                            "oldEntityId": None,
                            "oldValue": "",
                        }
                    ],
                }
            ],
        }
        planned.append((kind, entry))
    return planned


def visit_sizes(rng: random.Random, visits: int) -> list[int]:
    """Split ``visits`` into events of 1 to 3 visits."""
    sizes = []
    left = visits
    while left > 0:
        size = min(left, rng.randint(1, 3))
        sizes.append(size)
        left -= size
    return sizes
