"""Traffic of the account, generated from the seed: hourly events and conversion records.

Stored column-wise on the dataset (parallel lists indexed by event number, sorted by visit time;
conversion records grouped by event), money in integer USD cents.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .catalog import (
    CONVERSION_TYPES,
    COUNTRIES,
    CV2_VALUES,
    CV3_VALUES,
    OPERATING_SYSTEMS,
    TYPE_CUMULATIVE,
)

if TYPE_CHECKING:
    from .store import Store


def build_traffic(ds: Store, rng: random.Random) -> None:  # noqa: PLR0912, PLR0915 - hot loop
    """Generate hourly events (sorted by visit time) and their individual conversions."""
    rnd = rng.random
    per_hour = ds.events_per_campaign_hour
    n_zones = ds.n_zones
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
    for c in range(ds.n_campaigns):
        flow = ds.camp_flow[c]
        campaign_setup.append(
            (
                c,
                ds.flow_offers[flow],
                ds.flow_landers[flow],
                ds.camp_country[c],
                *ds.camp_params[c],
                ds.camp_cost[c],
            )
        )
    for hour in range(ds.days * 24):
        base = ds.start_ts + hour * 3600
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
                payout = ds.offer_payout[o]
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
    ds.ev_ts = ev_ts
    ds.ev_c = ev_c
    ds.ev_o = ev_o
    ds.ev_l = ev_l
    ds.ev_country = ev_country
    ds.ev_os = ev_os
    ds.ev_br = ev_br
    ds.ev_cv1 = ev_cv1
    ds.ev_cv2 = ev_cv2
    ds.ev_cv3 = ev_cv3
    ds.ev_visits = ev_visits
    ds.ev_uv = ev_uv
    ds.ev_clicks = ev_clicks
    ds.ev_conv = ev_conv
    ds.ev_errors = ev_errors
    ds.ev_impr = ev_impr
    ds.ev_cost = ev_cost
    ds.ev_rev = ev_rev
    ds.cv_event = cv_event
    ds.cv_click = cv_click
    ds.cv_type = cv_type
    ds.cv_post = cv_post
    ds.cv_rev = cv_rev
    ds.cv_post_order = sorted(range(len(cv_post)), key=cv_post.__getitem__)
    ds.cv_post_sorted = [cv_post[r] for r in ds.cv_post_order]
    # Stable identity of each event (its generation number): click ids and visit details
    # derive from it, so events added later (``add_late_data``) shift no existing id.
    ds.ev_uid = list(range(len(ev_ts)))
