"""The account's configuration, generated from the seed: its entities and their history.

Workspaces, traffic sources, affiliate networks, offers, landers, flows and campaigns, the
per-index tables the traffic and reports read (flow of a campaign, payout of an offer...), and the
event log: each entity's CREATE, CHANGE, ARCHIVE and RESTORE entries, which also set its
``createdTime``/``updatedTime``.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .catalog import CATEGORY, COUNTRIES, ENTITY_DIMS
from .formats import DAY_MS, UTC, iso_ms, random_uuid

if TYPE_CHECKING:
    from .store import Store


def build_entities(ds: Store, rng: random.Random) -> None:  # noqa: PLR0912, PLR0915 - a script
    """Create the entity dicts and the index arrays used by the report engine."""
    n_countries = len(COUNTRIES)
    ws_public = {"id": random_uuid(rng), "name": "Public"}
    ws_team = {"id": random_uuid(rng), "name": "Media Buying \u2013 Équipe Ünïcode"}
    ds.workspaces = [ws_public, ws_team]

    def ws_of(i: int) -> int:
        return 1 if i % 3 == 2 else 0

    def archive_set(n: int) -> set[int]:
        if n < 2:
            return set()
        return set(rng.sample(range(n), max(1, round(n / 6))))

    ts_names = ["PropellerAds", "Zeropark", "Café \u2013 Ünïcode 🚀", "TrafficStars"]
    ds.traffic_sources = []
    for i, name in enumerate(ts_names):
        ds.traffic_sources.append(
            {
                "id": random_uuid(rng),
                "name": name,
                "namePostfix": name,
                "deleted": False,
                "currencyCode": "USD",
                "postbackUrl": f"https://postback.ts{i}.example/?cid={{externalid}}&payout={{payout}}",
                "costModel": {"type": "AUTO"},
                "customVariables": [
                    {
                        "index": n,
                        "name": label,
                        "parameter": param,
                        "placeholder": f"{{{param}}}",
                        "trackedInReports": True,
                    }
                    for n, (label, param) in enumerate(
                        (("Zone", "zoneid"), ("Placement", "placement"), ("Sub", "sub")),
                        start=1,
                    )
                ],
                "workspace": {"id": ds.workspaces[ws_of(i)]["id"]},
                "tags": ["sandbox"] if i % 2 == 0 else [],
            }
        )

    an_names = ["MaxBounty", "ClickDealer", "Ünïcode Affiliates ✨"]
    ds.affiliate_networks = [
        {
            "id": random_uuid(rng),
            "name": name,
            "namePostfix": name,
            "deleted": False,
            "appendClickIdToOfferUrl": i != 1,
            "postbackIpWhitelist": [],
            "workspace": {"id": ws_public["id"]},
            "tags": [],
        }
        for i, name in enumerate(an_names)
    ]

    n_offers = 10
    archived_offers = archive_set(n_offers)
    ds.offers = []
    ds.offer_an = []
    ds.offer_payout = []
    ds.offer_country = []
    for i in range(n_offers):
        an = i % len(an_names)
        country = rng.randrange(n_countries)
        payout = rng.randint(150, 4500)
        code, cname, _ = COUNTRIES[country]
        postfix = f"Offer {i + 1}" if i != 4 else "Offre spéciale \u2013 Ünïcode 🎁"
        ds.offers.append(
            {
                "id": random_uuid(rng),
                "name": f"{an_names[an]} - {cname} - {postfix}",
                "namePostfix": postfix,
                "deleted": i in archived_offers,
                "url": f"https://offers{an}.example/click?o={i + 1}&cid={{clickid}}",
                "affiliateNetwork": {"id": ds.affiliate_networks[an]["id"]},
                "payout": (
                    {"type": "MANUAL", "value": payout / 100} if i % 2 == 0 else {"type": "AUTO"}
                ),
                "currencyCode": "USD",
                "country": {"code": code, "name": cname} if i % 2 == 0 else code,
                "workspace": {"id": ds.workspaces[ws_of(i)]["id"]},
                "tags": ["sandbox", f"net-{an}"],
                "allowedActions": ["EDIT", "ARCHIVE", "CLONE"],
            }
        )
        ds.offer_an.append(an)
        ds.offer_payout.append(payout)
        ds.offer_country.append(country)

    n_landers = 6
    archived_landers = archive_set(n_landers)
    ds.landers = []
    for i in range(n_landers):
        code, cname, _ = COUNTRIES[rng.randrange(n_countries)]
        postfix = f"Quiz Lander {i + 1}" if i != 3 else "Landing « Ünïcode » 🚀"
        ds.landers.append(
            {
                "id": random_uuid(rng),
                "name": f"{cname} - {postfix}",
                "namePostfix": postfix,
                "deleted": i in archived_landers,
                "url": f"https://landers.example/l{i + 1}/index.html",
                "numberOfOffers": 1 + i % 2,
                "country": code,
                "workspace": {"id": ds.workspaces[ws_of(i)]["id"]},
                "tags": [],
            }
        )

    n_flows = 4
    ds.flows = []
    ds.flow_offers = []
    ds.flow_landers = []
    for f in range(n_flows):
        offers = [i for i in range(n_offers) if i % n_flows == f]
        extra_offer = rng.randrange(n_offers)
        if extra_offer not in offers:
            offers.append(extra_offer)
        landers = [i for i in range(n_landers) if i % n_flows == f]
        if len(landers) < 2:
            extra = rng.randrange(n_landers)
            if extra not in landers:
                landers.append(extra)
        ds.flow_offers.append(offers)
        ds.flow_landers.append(landers)
        countries = sorted({ds.offer_country[o] for o in offers})
        flow_id = random_uuid(rng)
        ds.flows.append(
            {
                "id": flow_id,
                "name": f"Global - Flow {f + 1}" if f != 1 else "Global - Flüß Ünïcode",
                "deleted": False,
                "countries": [
                    {"code": COUNTRIES[c][0], "name": COUNTRIES[c][1]} for c in countries
                ],
                "defaultPaths": [
                    {
                        "id": random_uuid(rng),
                        "name": "Path 1",
                        "active": True,
                        "weight": 100,
                        "landers": [
                            {"lander": {"id": ds.landers[lnd]["id"]}, "weight": 100}
                            for lnd in landers
                        ],
                        "offers": [
                            {"offer": {"id": ds.offers[o]["id"]}, "weight": 100} for o in offers
                        ],
                        "offerRedirectMode": "REGULAR",
                        "realtimeRoutingApiState": "DISABLED",
                        "autoOptimized": False,
                    }
                ],
                "conditionalPathsGroups": [],
                "defaultOfferRedirectMode": "REGULAR",
                "realtimeRoutingApi": "DISABLED",
                "workspace": {"id": ws_public["id"]},
                "allowedActions": ["EDIT", "ARCHIVE", "CLONE"],
                "tags": [],
            }
        )

    archived_campaigns = archive_set(ds.n_campaigns)
    ds.campaigns = []
    ds.camp_ts = []
    ds.camp_flow = []
    ds.camp_ws = []
    ds.camp_country = []
    # (cost type, value in cents): CPC per visit, CPM per 1000 impressions, CPA per conversion
    ds.camp_cost = []
    ds.camp_params = []  # (max visits, ctr, cr)
    for c in range(ds.n_campaigns):
        ts = c % len(ts_names) if c < len(ts_names) else rng.randrange(len(ts_names))
        flow = c % n_flows
        country = rng.randrange(n_countries)
        code, cname, _ = COUNTRIES[country]
        if c == 2:
            postfix = "Café \u2013 Ünïcode 🚀"
        elif c < 26:
            postfix = f"Campaign {chr(65 + c)}"
        else:
            postfix = f"Campaign {c + 1}"
        if c % 5 == 3:
            cost = ("CPM", rng.randint(1000, 4000))
            cost_model = {"type": "CPM", "value": cost[1] / 100}
        elif c % 7 == 5:
            cost = ("CPA", rng.randint(300, 2000))
            cost_model = {"type": "CPA", "value": cost[1] / 100}
        else:
            cost = ("CPC", rng.randint(8, 40))
            cost_model = {"type": "CPC", "value": cost[1] / 100}
        ws = ws_of(c)
        camp_id = random_uuid(rng)
        ds.campaigns.append(
            {
                "id": camp_id,
                "name": f"{ts_names[ts]} - {cname} - {postfix}",
                "namePostfix": postfix,
                "deleted": c in archived_campaigns,
                "url": f"https://trk.sandbox.example/{camp_id}?zone={{zoneid}}&cost={{cost}}",
                "impressionUrl": f"https://trk.sandbox.example/impression/{camp_id}",
                "costModel": cost_model,
                "revenueModel": {"type": "RPA_AUTO"},
                "country": {"code": code, "name": cname} if c % 3 != 2 else code,
                "trafficSource": {
                    "id": ds.traffic_sources[ts]["id"],
                    "name": ts_names[ts],
                },
                "redirectTarget": {"flow": {"id": ds.flows[flow]["id"]}},
                "tags": ["sandbox"] if c % 2 == 0 else ["sandbox", "ünïcode"],
                "workspace": {"id": ds.workspaces[ws]["id"]},
                "currencyCode": "USD",
                "customPostbacksConfiguration": [],
            }
        )
        ds.camp_ts.append(ts)
        ds.camp_flow.append(flow)
        ds.camp_ws.append(ws)
        ds.camp_country.append(country)
        ds.camp_cost.append(cost)
        ds.camp_params.append((rng.randint(4, 30), rng.uniform(0.2, 0.6), rng.uniform(0.02, 0.08)))

    ds.entity_lists = {
        "workspace": ds.workspaces,
        "traffic-source": ds.traffic_sources,
        "affiliate-network": ds.affiliate_networks,
        "offer": ds.offers,
        "lander": ds.landers,
        "flow": ds.flows,
        "campaign": ds.campaigns,
    }
    ds.archived = {
        kind: [bool(e.get("deleted", False)) for e in items]
        for kind, items in ds.entity_lists.items()
    }
    ds.entity_index = {
        kind: {e["id"]: i for i, e in enumerate(items)} for kind, items in ds.entity_lists.items()
    }
    ds.entity_workspace = {
        kind: [0 if e.get("workspace", {}).get("id") == ws_public["id"] else 1 for e in items]
        for kind, items in ds.entity_lists.items()
    }


def build_event_log(ds: Store, rng: random.Random) -> None:
    """Create the entity timelines (createdTime/updatedTime) and the matching event log."""
    users = [
        {"id": random_uuid(rng), "name": "Sandbox Owner"},
        {"id": random_uuid(rng), "name": "Média Buyer Ünïcode"},
    ]
    client_id = random_uuid(rng)
    start_ms = ds.start_ts * 1000
    # Edits spread over the data range, never after today's UTC midnight (no future edits):
    # regular edits end 3 days before the horizon, the same-second pairs come after them.
    today_ms = int(datetime.now(UTC).timestamp() * 1000) // DAY_MS * DAY_MS
    horizon_ms = min(ds.end_ts * 1000 - 3_600_000, max(today_ms, start_ms + DAY_MS))
    regular_end = horizon_ms - 3 * DAY_MS
    entries: list[dict[str, Any]] = []

    def add(kind: str, ent: dict[str, Any], when: int, action: str, changes: list[Any]) -> None:
        user = users[0] if rng.random() < 0.7 else users[1]
        entries.append(
            {
                "id": random_uuid(rng),
                "clientId": client_id,
                "editTime": when,
                "actionType": action,
                "category": CATEGORY[kind],
                "entityId": ent["id"],
                "entityName": ent["name"],
                "userId": user["id"],
                "userName": user["name"],
                "changes": changes,
            }
        )

    def change(kind: str, ent: dict[str, Any], field: str, old: Any, new: Any) -> list[Any]:
        return [
            {
                "category": CATEGORY[kind],
                "entityId": ent["id"],
                "fieldName": field,
                "nestedChanges": [],
                "simpleChanges": [
                    {
                        "category": CATEGORY[kind],
                        "fieldName": field,
                        "newEntityId": None,
                        "newValue": new,
                        "oldEntityId": None,
                        "oldValue": old,
                    }
                ],
            }
        ]

    for kind in ENTITY_DIMS[::-1]:  # networks/sources first, campaigns last
        for i, ent in enumerate(ds.entity_lists[kind]):
            created = start_ms - rng.randint(20, 400) * DAY_MS - rng.randrange(DAY_MS)
            add(kind, ent, created, "CREATE", [])
            actions = ["CHANGE"] * rng.randint(0, 2)
            if ent.get("deleted"):
                actions.append("ARCHIVE")
            elif i % 4 == 1:
                actions += ["ARCHIVE", "RESTORE"]
            times = sorted(rng.randint(created + 60_000, regular_end) for _ in actions)
            for k, (action, t) in enumerate(zip(actions, times, strict=True)):
                if action == "CHANGE":
                    field = ("tags", "url", "notes")[k % 3]
                    changes = change(kind, ent, field, f"old-{k}", f"new-{k}")
                else:
                    old, new = ("false", "true") if action == "ARCHIVE" else ("true", "false")
                    changes = change(kind, ent, "deleted", old, new)
                add(kind, ent, t, action, changes)
            ent["createdTime"] = iso_ms(created)
            ent["updatedTime"] = iso_ms(times[-1] if times else created)

    # Entries sharing one second (and one with the very same millisecond) on active entities.
    pairs = [
        ("campaign", next((i for i, a in enumerate(ds.archived["campaign"]) if not a), 0)),
        ("offer", next((i for i, a in enumerate(ds.archived["offer"]) if not a), 0)),
        ("lander", next((i for i, a in enumerate(ds.archived["lander"]) if not a), 0)),
        ("flow", 0),
    ]
    base = regular_end // 1000 * 1000 + DAY_MS + 7 * 60_000
    for (kind, i), when in zip(  # noqa: B905 - fixed tuples
        pairs, (base + 120, base + 845, base + DAY_MS + 500, base + DAY_MS + 500)
    ):
        ent = ds.entity_lists[kind][i]
        add(kind, ent, when, "CHANGE", change(kind, ent, "tags", "[]", '["sandbox"]'))
        ent["updatedTime"] = iso_ms(when)
    entries.sort(key=lambda e: (e["editTime"], e["id"]))
    ds.event_log = entries
    ds.users = users
