"""Late data: traffic, conversions and event-log entries added to a :class:`Dataset` later.

``add_late_data(ds, at, ...)`` (also ``Dataset.add_late_data`` and ``POST /__sandbox__/add-data``)
changes the dataset the way an account changes between two syncs: new traffic events on active
campaigns, late conversions on clicks that already exist, ``CHANGE`` entries on active entities
(see the sandbox README for what each endpoint then serves). The n-th item of each kind goes, by
``n % 4``: 0 at ``at``; 1 in ``at``'s second, after it (event log: a later millisecond); 2 in the
rest of ``at``'s UTC hour; 3 in ``[at, until)`` when ``until`` is given, else like 2.

Event indexes shift when events are inserted, click ids do not (they derive from
``Dataset.ev_uid``). Deterministic for a dataset, its earlier additions, the arguments and
``seed``. Arguments are validated and everything planned before the columns change in place;
then the dataset's caches are dropped and its change listeners (report caches) told.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from datetime import datetime, timezone
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
from .formats import instant_ms, iso_ms, random_uuid

if TYPE_CHECKING:
    from .store import Store

UTC = timezone.utc


def _count(value: Any, name: str) -> int:
    """A non-negative integer argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    return value


def _campaigns(ds: Store, campaign_ids: Sequence[str] | None) -> list[int]:
    """Campaign indexes allowed to receive data: the given ids, else every active campaign."""
    items = ds.raw_entities("campaign")
    if campaign_ids is None:
        return [i for i, c in enumerate(items) if not c.get("deleted", False)]
    if isinstance(campaign_ids, str):
        campaign_ids = [campaign_ids]
    index = {c["id"]: i for i, c in enumerate(items)}
    unknown = [cid for cid in campaign_ids if cid not in index]
    if unknown or not campaign_ids:
        raise ValueError(f"unknown campaign ids: {unknown}" if unknown else "no campaign ids")
    return sorted({index[cid] for cid in campaign_ids})


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

    def __init__(self, ds: Store, campaigns: list[int], max_age: int, rng: random.Random) -> None:
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


def new_event(ds: Store, rng: random.Random, c: int, ts: int, n_visits: int) -> dict[str, int]:
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


def insert_events(ds: Store, new: list[dict[str, int]]) -> tuple[list[int], list[int]]:
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
    ds: Store, event: int, click: int, *, type_index: int, post: int, pct: int
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
    ds: Store, rng: random.Random, n: int, *, at_ms: int, until_ms: int | None, call: int
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


def add_late_data(  # noqa: PLR0912, PLR0915 - one plan, then one change
    ds: Store,
    at: datetime | str | int,
    *,
    visits: int = 0,
    conversions: int = 0,
    event_log_entries: int = 0,
    seed: int = 0,
    until: datetime | str | int | None = None,
    campaign_ids: Sequence[str] | None = None,
    max_click_age: int = 86_400,
) -> dict[str, Any]:
    """Add late data to ``ds`` at/around the UTC instant ``at`` (see the module docstring).

    Args:
        ds: the dataset to change (in place).
        at: UTC instant: a datetime (naive = UTC), epoch milliseconds, or ISO-8601 text.
        visits: number of visits to add (in new events of 1 to 3 visits, each with >= 1 click).
        conversions: number of late conversions to add on existing clicks.
        event_log_entries: number of ``CHANGE`` entries to add.
        seed: seed of the choices (same dataset, history, arguments and seed: same data).
        until: optional end (exclusive) of the spread of every 4th item; after ``at``.
        campaign_ids: campaigns that receive the visits and conversions (default: every
            active campaign); event-log entries go to any active entity.
        max_click_age: the oldest click a conversion may land on, in seconds before its
            postback (at least 30).

    Returns:
        What was added, JSON-ready: ``at``, ``until``, ``seed``, the ``visits`` (events),
        ``conversions`` and ``event_log`` items, and their ``totals`` (see the sandbox README).

    Raises:
        ValueError: bad arguments, ``at`` outside the data range while adding visits, or not
            enough clicks without a conversion; the dataset is then left unchanged.

    """
    visits = _count(visits, "visits")
    conversions = _count(conversions, "conversions")
    event_log_entries = _count(event_log_entries, "event_log_entries")
    max_click_age = _count(max_click_age, "max_click_age")
    if max_click_age < MIN_CLICK_AGE:
        raise ValueError(f"max_click_age must be at least {MIN_CLICK_AGE} seconds")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, not {seed!r}")
    at_ms = instant_ms(at, "at")
    until_ms = None if until is None else instant_ms(until, "until")
    if until_ms is not None and until_ms <= at_ms:
        raise ValueError("until must be after at")
    with ds._late_lock:  # the dataset's own helper module: private parts
        call = ds._late_calls
        campaigns = _campaigns(ds, campaign_ids) if visits or conversions else []
        if (visits or conversions) and not campaigns:
            raise ValueError("no active campaign to add traffic or conversions to")
        if visits and not ds.start_ts * 1000 <= at_ms < ds.end_ts * 1000:
            raise ValueError(
                f"at ({iso_ms(at_ms)}) must be inside the data range "
                f"[{iso_ms(ds.start_ts * 1000)}, {iso_ms(ds.end_ts * 1000)}) to add visits"
            )
        rng = random.Random(
            f"late:{ds.seed}:{call}:{seed}:{at_ms}:{until_ms}:{visits}:{conversions}:"
            f"{event_log_entries}:{max_click_age}:{campaigns}"
        )

        # Plan everything first: a ValueError leaves the dataset as it was.
        picker = ClickPicker(ds, campaigns, max_click_age, rng)
        planned_conv = []
        for post_ms in instants(rng, conversions, at_ms, until_ms, None):
            post = post_ms // 1000
            event, click = picker.pick(post)
            planned_conv.append((post, event, click, conversion_type(rng), 80 + rng.randrange(41)))
        sizes = visit_sizes(rng, visits)
        times = instants(rng, len(sizes), at_ms, until_ms, ds.end_ts * 1000)
        new_events = []
        for k, (size, t_ms) in enumerate(zip(sizes, times, strict=True)):
            ev = new_event(ds, rng, rng.choice(campaigns), t_ms // 1000, size)
            ev["ev_uid"] = len(ds.ev_uid) + k  # uids stay a permutation of 0..n-1
            new_events.append(ev)
        entries = plan_entries(
            ds, rng, event_log_entries, at_ms=at_ms, until_ms=until_ms, call=call
        )

        # Apply.
        indexes, positions = insert_events(ds, new_events)
        added_conv = []
        for post, old_event, click, type_index, pct in planned_conv:
            event = old_event + bisect.bisect_right(positions, old_event)
            rev, cost = insert_conversion(
                ds, event, click, type_index=type_index, post=post, pct=pct
            )
            added_conv.append((post, event, click, type_index, rev, cost))
        if planned_conv:
            order = sorted(range(len(ds.cv_post)), key=ds.cv_post.__getitem__)
            ds.cv_post_order[:] = order
            ds.cv_post_sorted[:] = [ds.cv_post[r] for r in order]
        for kind, entry in entries:
            ent = ds.raw_entities(kind)[ds.entity_index[kind][entry["entityId"]]]
            stamp = iso_ms(entry["editTime"])
            if stamp > str(ent.get("updatedTime", "")):
                ent["updatedTime"] = stamp
        if entries:
            ds.event_log.extend(entry for _, entry in entries)
            ds.event_log.sort(key=lambda e: (e["editTime"], e["id"]))
        ds._late_calls = call + 1
        ds._data_changed()

        campaigns_raw = ds.raw_entities("campaign")
        offers_raw = ds.raw_entities("offer")
        visit_items = [
            {
                "campaignId": campaigns_raw[ds.ev_c[i]]["id"],
                "ts": ds.ev_ts[i],
                "timestamp": iso_ms(ds.ev_ts[i] * 1000),
                "visits": ds.ev_visits[i],
                "uniqueVisits": ds.ev_uv[i],
                "clicks": ds.ev_clicks[i],
                "impressions": ds.ev_impr[i],
                "cost_cents": ds.ev_cost[i],
                "visitIds": [ds.visit_id(i, j) for j in range(ds.ev_visits[i])],
                "clickIds": [ds.visit_id(i, j) for j in range(ds.ev_clicks[i])],
            }
            for i in indexes
        ]
        conv_items = []
        for post, event, click, type_index, rev, cost in added_conv:
            type_id, type_name, _, _, txn = CONVERSION_TYPES[type_index]
            conv_items.append(
                {
                    "clickId": ds.visit_id(event, click),
                    "campaignId": campaigns_raw[ds.ev_c[event]]["id"],
                    "offerId": offers_raw[ds.ev_o[event]]["id"],
                    "conversionTypeId": type_id,
                    "conversionType": type_name,
                    "transactionId": txn,
                    "revenue_cents": rev,
                    "cost_cents": cost,
                    "postback_ts": post,
                    "visit_ts": ds.ev_ts[event],
                    "postbackTime": iso_ms(post * 1000),
                }
            )
    totals = {
        "visits": sum(v["visits"] for v in visit_items),
        "uniqueVisits": sum(v["uniqueVisits"] for v in visit_items),
        "clicks": sum(v["clicks"] for v in visit_items),
        "impressions": sum(v["impressions"] for v in visit_items),
        "errors": 0,
        "conversions": len(conv_items),
        "revenue_cents": sum(c["revenue_cents"] for c in conv_items),
        "cost_cents": sum(v["cost_cents"] for v in visit_items)
        + sum(c["cost_cents"] for c in conv_items),
    }
    return {
        "at": iso_ms(at_ms),
        "until": None if until_ms is None else iso_ms(until_ms),
        "seed": seed,
        "visits": visit_items,
        "conversions": conv_items,
        "event_log": [dict(entry) for _, entry in entries],
        "totals": totals,
    }
