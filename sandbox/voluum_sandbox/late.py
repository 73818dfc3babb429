"""Late data: traffic, conversions and event-log entries added to a :class:`Dataset` later.

``add_late_data(ds, at, ...)`` (also ``Dataset.add_late_data`` and ``POST /__sandbox__/add-data``)
changes the dataset the way an account changes between two syncs:

- **visits**: new traffic events (1 to 3 visits each, at least one click) on active campaigns.
  ``/report`` counts them, ``/report/live/{visits,clicks}/{campaignId}`` serves them.
- **conversions**: late conversions on clicks that already exist (clicks without a conversion,
  visited between ``max_click_age`` seconds and 30 s before the postback).
  ``/report/conversions`` serves them by postback time; ``/report`` counts them on the day/hour
  of their visit (``conversionTimeMode=VISIT``) or of their postback (``CONVERSION``). On CPA
  campaigns the click's event also gains the CPA cost.
- **event-log entries**: ``CHANGE`` entries (field ``notes``) on active entities; the entity's
  ``updatedTime`` follows.

Placement: the n-th item of each kind goes, by ``n % 4``: 0 at ``at`` itself; 1 in the same
second as ``at``, after it (for event-log entries a later millisecond when the second has room;
visits and postbacks have whole seconds, so this is ``at``'s second); 2 in the rest of ``at``'s
UTC hour; 3 in ``[at, until)`` when ``until`` is given, else like 2. Nothing is placed before
``at``. Visits stay inside the data range (``at`` must be in it).

Event indexes shift when events are inserted, but click ids do not: they derive from
``Dataset.ev_uid``. Everything is deterministic for a given dataset, call history, arguments and
``seed``. The dataset's derived caches are dropped and its change listeners (the report engines
of the servers serving it) are told, so no cached answer is stale.

This module validates the arguments, plans everything, then applies it in one go; the records
themselves are built, placed in time and merged into the columns by ``late_records.py``.
"""

from __future__ import annotations

import bisect
import random
import re
from collections.abc import Sequence
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from .catalog import CONVERSION_TYPES
from .formats import iso_ms
from .late_records import (
    MIN_CLICK_AGE,
    ClickPicker,
    conversion_type,
    insert_conversion,
    insert_events,
    instants,
    new_event,
    plan_entries,
    visit_sizes,
)

if TYPE_CHECKING:
    from .data import Dataset

UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def instant_ms(value: datetime | date | str | float | None, name: str) -> int:
    """Epoch milliseconds of an instant: a datetime (naive = UTC), epoch ms, or ISO-8601 text."""
    if value is None:
        raise ValueError(f"{name} is required")
    if isinstance(value, bool):
        raise ValueError(f"{name}: not an instant: {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"{name}: not an ISO-8601 instant: {value!r}") from exc
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH  # exact integer arithmetic (no float rounding of the milliseconds)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def _count(value: Any, name: str) -> int:
    """A non-negative integer argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    return value


def _campaigns(ds: Dataset, campaign_ids: Sequence[str] | None) -> list[int]:
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


def add_late_data(  # noqa: PLR0912, PLR0915 - one plan, then one change
    ds: Dataset,
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
        ``{"at", "until", "seed", "visits": [...], "conversions": [...], "event_log": [...],
        "totals": {...}}`` (JSON-ready). ``visits`` items: ``campaignId``, ``ts``,
        ``timestamp``, ``visits``, ``uniqueVisits``, ``clicks``, ``impressions``,
        ``cost_cents``, ``visitIds``, ``clickIds``. ``conversions`` items: ``clickId``,
        ``campaignId``, ``offerId``, ``conversionTypeId``, ``conversionType``,
        ``transactionId``, ``revenue_cents``, ``cost_cents`` (CPA cost added to the click's
        event), ``postback_ts``, ``visit_ts``, ``postbackTime``. ``event_log``: the entries.
        ``totals``: ``visits``, ``uniqueVisits``, ``clicks``, ``impressions``, ``errors``,
        ``conversions``, ``revenue_cents`` and ``cost_cents`` added (USD cents).

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
