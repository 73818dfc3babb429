"""A Voluum that restates its past: the restatement plan drawn from the seed.

``plan_restatements(ds, rate)`` (``Dataset(..., restatements=rate)``) adds, deterministically:

1. late postbacks: conversions on existing clicks, a lag after the visit (hours for most, a
   tail of weeks, a few of one to three months);
2. conversion uploads on clicks of any age (about one in eight a negative payout correction);
3. integrated cost: campaigns of the first two traffic sources report an estimated cost per UTC
   day until the traffic source's import lands one to a few days later (rarely two weeks) and
   replaces it with the real figure (the day's total x 0.85 .. 1.15, spread over its visits);
4. manual cost updates: now and then a campaign's cost over a range of past days is set to a
   total (x 0.7 .. 1.3 of what it was), spread over the range's visits.

Conversions become records of the dataset (their CPA cost, on CPA campaigns, a cost delta at the
postback); cost changes become deltas landing at their instant (``restatement_plan.py``). Each is
visible once the dataset's clock passes it. ``rate`` scales how many (1 = the usual density).
"""

from __future__ import annotations

import bisect
import random
from typing import TYPE_CHECKING, Any

from .catalog import CONVERSION_TYPES
from .formats import iso_ms
from .late import conversion_type
from .restatement_plan import Restatements

if TYPE_CHECKING:
    from .store import Store

DAY = 86_400
HOUR = 3_600
INTEGRATED_SOURCES = (0, 1)  # traffic-source indexes whose cost is imported (estimates first)
LATE_PER_CAMPAIGN_DAY = 1.0
UPLOADS_PER_CAMPAIGN_DAY = 0.15
MANUAL_PER_CAMPAIGN_DAY = 0.05


def draw_lag(rng: random.Random) -> int:
    """Seconds between a visit and a late postback: mostly hours, a tail of weeks and months."""
    r = rng.random()
    if r < 0.55:
        return HOUR + int(min(rng.expovariate(1 / (16 * HOUR)), 3 * DAY))
    if r < 0.85:
        return rng.randrange(2 * DAY, 14 * DAY)
    if r < 0.95:
        return rng.randrange(14 * DAY, 42 * DAY)
    return rng.randrange(30 * DAY, 92 * DAY)


def _count(rng: random.Random, mean: float) -> int:
    """A whole number of items averaging ``mean``."""
    whole = int(mean)
    return whole + (1 if rng.random() < mean - whole else 0)


def spread(total: int, weights: list[int]) -> list[int]:
    """``total`` cents split in proportion to ``weights`` (largest remainders get the cents)."""
    weight = sum(weights)
    if weight == 0:
        return [0] * len(weights)
    shares = [total * w // weight for w in weights]
    left = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: -(total * weights[i] % weight))
    for i in order[:left]:
        shares[i] += 1
    return shares


class _Planner:
    """Draws the plan for one dataset (conversions first, then cost changes)."""

    def __init__(self, ds: Store, rate: float) -> None:
        self.ds = ds
        self.rng = random.Random(f"restate:{ds.seed}:{rate}")
        self.plan = Restatements(rate)
        self.per_day = rate * ds.n_campaigns * ds.days
        self.taken: dict[int, set[int]] = {}
        for event, click in zip(ds.cv_event, ds.cv_click, strict=True):
            self.taken.setdefault(event, set()).add(click)
        self.conversions: list[tuple[int, int, int, int, int]] = []
        self.deltas: list[tuple[int, int, int]] = []  # (land, uid, delta)

    def spare_click(self, hi: int) -> tuple[int, int] | None:
        """A random ``(event, click)`` among events ``0..hi-1`` with a click not converted."""
        for _ in range(50):
            event = self.rng.randrange(hi)
            used = self.taken.setdefault(event, set())
            for j in range(self.ds.ev_clicks[event]):
                if j not in used:
                    used.add(j)
                    return event, j
        return None

    def conversion(self, kind: str, event: int, click: int, post: int, sign: int) -> None:
        """Plan one conversion record (and its CPA cost) visible at ``post``."""
        ds, rng = self.ds, self.rng
        t = conversion_type(rng)
        rev = ds.offer_payout[ds.ev_o[event]] * CONVERSION_TYPES[t][3] * (80 + rng.randrange(41))
        rev = sign * (rev // 10_000)
        self.conversions.append((event, click, t, post, rev))
        cost_kind, cpa = ds.camp_cost[ds.ev_c[event]]
        if cost_kind == "CPA" and sign > 0:
            self.deltas.append((post, ds.ev_uid[event], cpa))
        self.item(kind, post, ds.ev_c[event], clickId=ds.visit_id(event, click))
        self.plan.items[-1].update(
            visit_ts=ds.ev_ts[event], conversionType=CONVERSION_TYPES[t][1], revenue_cents=rev
        )

    def item(self, kind: str, at: int, campaign: int, **extra: Any) -> None:
        """Record a JSON-ready item of the plan."""
        cid = self.ds.campaigns[campaign]["id"]
        self.plan.items.append(
            {"kind": kind, "at": at, "time": iso_ms(at * 1000), "campaignId": cid, **extra}
        )

    def conversions_plan(self) -> None:
        """Late postbacks on clicks of any campaign, then uploads on clicks of any age."""
        ds, rng = self.ds, self.rng
        for _ in range(_count(rng, self.per_day * LATE_PER_CAMPAIGN_DAY)):
            found = self.spare_click(ds.n_events)
            if found is not None:
                event, click = found
                self.conversion("late_postback", event, click, ds.ev_ts[event] + draw_lag(rng), 1)
        for _ in range(_count(rng, self.per_day * UPLOADS_PER_CAMPAIGN_DAY)):
            at = rng.randrange(ds.start_ts + DAY, ds.end_ts + 14 * DAY)
            found = self.spare_click(bisect.bisect_left(ds.ev_ts, at - HOUR))
            if found is not None:
                sign = -1 if rng.random() < 0.125 else 1
                self.conversion("upload", found[0], found[1], at, sign)

    def cost_plan(self) -> None:
        """Integrated cost replacing each campaign-day's estimate, then manual cost updates."""
        ds, rng = self.ds, self.rng
        days: dict[tuple[int, int], list[int]] = {}
        for i, (c, ts) in enumerate(zip(ds.ev_c, ds.ev_ts, strict=True)):
            days.setdefault((c, ts // DAY), []).append(i)
        current = list(ds.ev_cost)
        integrated = [
            ds.camp_ts[c] in INTEGRATED_SOURCES and ds.camp_cost[c][0] != "CPA"
            for c in range(ds.n_campaigns)
        ]
        changes: list[tuple[int, int, list[int], float]] = []  # (at, campaign, day numbers, x)
        for (c, day), _events in sorted(days.items()):
            if integrated[c]:
                r = rng.random()
                lag = 1 if r < 0.55 else 2 if r < 0.8 else rng.randint(3, 7) if r < 0.95 else 14
                at = (day + 1 + lag) * DAY + rng.randrange(2 * HOUR, 12 * HOUR)
                changes.append((at, c, [day], rng.uniform(0.85, 1.15)))
        first_day = ds.start_ts // DAY
        for c in range(ds.n_campaigns):
            if integrated[c] or ds.camp_cost[c][0] == "CPA":
                continue
            for day in range(first_day + 2, ds.end_ts // DAY + 14):
                if rng.random() < self.plan.rate * MANUAL_PER_CAMPAIGN_DAY:
                    last = day - 1 - int(min(rng.expovariate(1 / 8), 60))
                    span = [d for d in range(last - rng.randint(0, 9), last + 1) if d >= first_day]
                    at = day * DAY + rng.randrange(8 * HOUR, 20 * HOUR)
                    if span:
                        changes.append((at, c, span, rng.uniform(0.7, 1.3)))
        for at, c, span, factor in sorted(changes):
            events = [i for d in span for i in days.get((c, d), ())]
            before = sum(current[i] for i in events)
            new = spread(round(before * factor), [ds.ev_visits[i] for i in events])
            for i, cost in zip(events, new, strict=True):
                if cost != current[i]:
                    self.deltas.append((at, ds.ev_uid[i], cost - current[i]))
                    current[i] = cost
            kind = "integrated_cost" if integrated[c] else "manual_cost"
            names = [iso_ms(d * DAY * 1000)[:10] for d in span]
            self.item(kind, at, c, days=names, before_cents=before, cost_cents=sum(new))

    def apply(self) -> Restatements:
        """Insert the planned conversions into the dataset; return the plan."""
        ds = self.ds
        old = list(zip(ds.cv_event, ds.cv_click, ds.cv_type, ds.cv_post, ds.cv_rev, strict=True))
        merged = sorted(
            [(rec[0], 0, k, rec) for k, rec in enumerate(old)]
            + [(rec[0], 1, k, rec) for k, rec in enumerate(self.conversions)]
        )
        for col, name in enumerate(("cv_event", "cv_click", "cv_type", "cv_post", "cv_rev")):
            getattr(ds, name)[:] = [m[3][col] for m in merged]
        for event, _, _, _, rev in self.conversions:
            ds.ev_conv[event] += 1
            ds.ev_rev[event] += rev
        order = sorted(range(len(ds.cv_post)), key=ds.cv_post.__getitem__)
        ds.cv_post_order[:] = order
        ds.cv_post_sorted[:] = [ds.cv_post[r] for r in order]
        self.deltas.sort()
        plan = self.plan
        plan.cost_land = [d[0] for d in self.deltas]
        plan.cost_uid = [d[1] for d in self.deltas]
        plan.cost_delta = [d[2] for d in self.deltas]
        plan.items.sort(key=lambda item: item["at"])
        return plan


def plan_restatements(ds: Store, rate: float) -> Restatements:
    """Draw the restatement plan of ``ds`` (see the module docstring); changes ``ds`` in place."""
    planner = _Planner(ds, rate)
    planner.conversions_plan()
    planner.cost_plan()
    return planner.apply()
