"""Traffic of the dataset: hourly events and individual conversion records.

Generated from the seed and stored column-wise (parallel lists indexed by event number, sorted
by visit time), with the range look-ups and currency columns the report engine reads.
"""

from __future__ import annotations

import bisect
import random
import threading

from .catalog import (
    CONVERSION_TYPES,
    COUNTRIES,
    CV2_VALUES,
    CV3_VALUES,
    OPERATING_SYSTEMS,
    TYPE_CUMULATIVE,
    convert_cents,
)


class TrafficData:
    """Part of :class:`~voluum_sandbox.data.Dataset`: event and conversion columns."""

    start_ts: int
    days: int
    n_campaigns: int
    n_zones: int
    events_per_campaign_hour: int
    camp_flow: list[int]
    camp_country: list[int]
    camp_cost: list[tuple[str, int]]
    camp_params: list[tuple[int, float, float]]
    flow_offers: list[list[int]]
    flow_landers: list[list[int]]
    offer_payout: list[int]
    _lock: threading.Lock
    _currency_cache: dict[tuple[str, str], list[int]]

    def _build_traffic(self, rng: random.Random) -> None:  # noqa: PLR0912, PLR0915 - hot loop
        """Generate hourly events (sorted by visit time) and their individual conversions."""
        rnd = rng.random
        per_hour = self.events_per_campaign_hour
        n_zones = self.n_zones
        n_countries = len(COUNTRIES)
        n_os = len(OPERATING_SYSTEMS)
        os_browsers = [o[4] for o in OPERATING_SYSTEMS]
        cols: dict[str, list[int]] = {
            name: []
            for name in (
                *("ts", "c", "o", "l", "country", "os", "br", "cv1", "cv2", "cv3"),
                *("visits", "uv", "clicks", "conv", "errors", "impr", "cost", "rev"),
            )
        }
        ev_ts, ev_c, ev_o, ev_l = cols["ts"], cols["c"], cols["o"], cols["l"]
        ev_country, ev_os, ev_br = cols["country"], cols["os"], cols["br"]
        ev_cv1, ev_cv2, ev_cv3 = cols["cv1"], cols["cv2"], cols["cv3"]
        ev_visits, ev_uv, ev_clicks = cols["visits"], cols["uv"], cols["clicks"]
        ev_conv, ev_errors, ev_impr = cols["conv"], cols["errors"], cols["impr"]
        ev_cost, ev_rev = cols["cost"], cols["rev"]
        cv_event: list[int] = []
        cv_click: list[int] = []
        cv_type: list[int] = []
        cv_post: list[int] = []
        cv_rev: list[int] = []
        factors = [t[3] for t in CONVERSION_TYPES]
        campaign_setup = []
        for c in range(self.n_campaigns):
            flow = self.camp_flow[c]
            campaign_setup.append(
                (
                    c,
                    self.flow_offers[flow],
                    self.flow_landers[flow],
                    self.camp_country[c],
                    *self.camp_params[c],
                    self.camp_cost[c],
                )
            )
        for hour in range(self.days * 24):
            base = self.start_ts + hour * 3600
            batch = []
            for c, offers, landers, home, vmax, ctr, cr, cost in campaign_setup:
                if rnd() < 0.05:  # an hour without traffic for this campaign
                    continue
                n_off = len(offers)
                n_land = len(landers)
                is_cpm = cost[0] == "CPM"
                for _ in range(per_hour):
                    osi = int(rnd() * n_os)
                    brs = os_browsers[osi]
                    visits = 1 + int(rnd() ** 2 * vmax)
                    clicks = min(visits, int(visits * ctr * (0.5 + rnd()) + rnd()))
                    batch.append(
                        (
                            base + int(rnd() * 3600),
                            c,
                            offers[int(rnd() * n_off)],
                            landers[int(rnd() * n_land)],
                            home if rnd() < 0.8 else int(rnd() * n_countries),
                            osi,
                            brs[int(rnd() * len(brs))],
                            int(rnd() * n_zones),
                            int(rnd() * len(CV2_VALUES)),
                            int(rnd() * len(CV3_VALUES)),
                            visits,
                            visits - int(visits * 0.15 * rnd()),
                            clicks,
                            min(clicks, int(clicks * cr + rnd())),
                            1 if rnd() < 0.01 else 0,
                            visits * (8 + int(rnd() * 5)) if is_cpm else 0,
                        )
                    )
            batch.sort()
            for ev in batch:
                (
                    ts,
                    c,
                    o,
                    lnd,
                    country,
                    osi,
                    br,
                    cv1,
                    cv2,
                    cv3,
                    visits,
                    uv,
                    clicks,
                    n_conv,
                    err,
                    impr,
                ) = ev
                idx = len(ev_ts)
                ev_ts.append(ts)
                ev_c.append(c)
                ev_o.append(o)
                ev_l.append(lnd)
                ev_country.append(country)
                ev_os.append(osi)
                ev_br.append(br)
                ev_cv1.append(cv1)
                ev_cv2.append(cv2)
                ev_cv3.append(cv3)
                ev_visits.append(visits)
                ev_uv.append(uv)
                ev_clicks.append(clicks)
                ev_conv.append(n_conv)
                ev_errors.append(err)
                ev_impr.append(impr)
                revenue = 0
                if n_conv:
                    doubles = 0
                    if n_conv >= 2 and rnd() < 0.3:
                        doubles = 1 + int(rnd() * (n_conv // 2))
                    payout = self.offer_payout[o]
                    for j in range(n_conv - doubles):
                        r = rnd()
                        t = 0
                        while r >= TYPE_CUMULATIVE[t]:
                            t += 1
                        delay = 30 + int(rnd() ** 4 * 172_800)
                        kinds = [(t, delay)]
                        if j < doubles:
                            kinds.append(((t + 1) % 5, delay + 60 + int(rnd() ** 2 * 86_400)))
                        for tt, dly in kinds:
                            rev = payout * factors[tt] * (80 + int(rnd() * 41)) // 10_000
                            cv_event.append(idx)
                            cv_click.append(j)
                            cv_type.append(tt)
                            cv_post.append(ts + dly)
                            cv_rev.append(rev)
                            revenue += rev
                ev_rev.append(revenue)
                kind, value = cost
                if kind == "CPC":
                    ev_cost.append(visits * value)
                elif kind == "CPM":
                    ev_cost.append(impr * value // 1000)
                else:
                    ev_cost.append(n_conv * value)
        self.ev_ts = ev_ts
        self.ev_c = ev_c
        self.ev_o = ev_o
        self.ev_l = ev_l
        self.ev_country = ev_country
        self.ev_os = ev_os
        self.ev_br = ev_br
        self.ev_cv1 = ev_cv1
        self.ev_cv2 = ev_cv2
        self.ev_cv3 = ev_cv3
        self.ev_visits = ev_visits
        self.ev_uv = ev_uv
        self.ev_clicks = ev_clicks
        self.ev_conv = ev_conv
        self.ev_errors = ev_errors
        self.ev_impr = ev_impr
        self.ev_cost = ev_cost
        self.ev_rev = ev_rev
        self.cv_event = cv_event
        self.cv_click = cv_click
        self.cv_type = cv_type
        self.cv_post = cv_post
        self.cv_rev = cv_rev
        self.cv_post_order = sorted(range(len(cv_post)), key=cv_post.__getitem__)
        self.cv_post_sorted = [cv_post[r] for r in self.cv_post_order]
        # Stable identity of each event (its generation number): click ids and visit details
        # derive from it, so events added later (``add_late_data``) shift no existing id.
        self.ev_uid = list(range(len(ev_ts)))

    @property
    def n_events(self) -> int:
        """Number of traffic events."""
        return len(self.ev_ts)

    @property
    def n_conversions(self) -> int:
        """Number of individual conversion records."""
        return len(self.cv_event)

    def event_range(self, start_ts: int, end_ts: int) -> tuple[int, int]:
        """Half-open range of event indexes whose visit time is in ``[start_ts, end_ts)``."""
        return bisect.bisect_left(self.ev_ts, start_ts), bisect.bisect_left(self.ev_ts, end_ts)

    def conversion_range_by_event(self, lo: int, hi: int) -> tuple[int, int]:
        """Half-open range of conversion records belonging to events ``lo..hi-1``."""
        return bisect.bisect_left(self.cv_event, lo), bisect.bisect_left(self.cv_event, hi)

    def conversions_by_postback(self, start_ts: int, end_ts: int) -> list[int]:
        """Conversion records with postback time in ``[start_ts, end_ts)``, by (time, index)."""
        lo = bisect.bisect_left(self.cv_post_sorted, start_ts)
        hi = bisect.bisect_left(self.cv_post_sorted, end_ts)
        return self.cv_post_order[lo:hi]

    def cost_column(self, currency: str) -> list[int]:
        """Per-event cost in ``currency`` cents (converted per event, so sums stay consistent)."""
        return self._converted("cost", currency)

    def conversion_revenue_column(self, currency: str) -> list[int]:
        """Per-conversion revenue in ``currency`` cents."""
        return self._converted("rev", currency)

    def _converted(self, what: str, currency: str) -> list[int]:
        """Convert a cents column once per currency and cache it."""
        source = self.ev_cost if what == "cost" else self.cv_rev
        if currency == "USD":
            return source
        key = (what, currency)
        col = self._currency_cache.get(key)
        if col is None:
            col = [convert_cents(v, currency) for v in source]
            with self._lock:
                self._currency_cache[key] = col
        return col
