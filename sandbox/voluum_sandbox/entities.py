"""Entities of the dataset, generated from the seed, and their index arrays.

Workspaces, traffic sources, affiliate networks, offers, landers, flows and campaigns, plus the
per-index tables (flow of a campaign, payout of an offer...) the other parts of the data use.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from .catalog import COUNTRIES
from .formats import random_uuid


class EntityData:
    """Part of :class:`~voluum_sandbox.data.Dataset`: the entity dicts and their indexes."""

    n_campaigns: int

    def _build_entities(self, rng: random.Random) -> None:  # noqa: PLR0912, PLR0915 - linear script
        """Create the entity dicts and the index arrays used by the report engine."""
        n_countries = len(COUNTRIES)
        ws_public = {"id": random_uuid(rng), "name": "Public"}
        ws_team = {"id": random_uuid(rng), "name": "Media Buying \u2013 Équipe Ünïcode"}
        self.workspaces: list[dict[str, Any]] = [ws_public, ws_team]

        def ws_of(i: int) -> int:
            return 1 if i % 3 == 2 else 0

        def archive_set(n: int) -> set[int]:
            if n < 2:
                return set()
            return set(rng.sample(range(n), max(1, round(n / 6))))

        ts_names = ["PropellerAds", "Zeropark", "Café \u2013 Ünïcode 🚀", "TrafficStars"]
        self.traffic_sources: list[dict[str, Any]] = []
        for i, name in enumerate(ts_names):
            self.traffic_sources.append(
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
                    "workspace": {"id": self.workspaces[ws_of(i)]["id"]},
                    "tags": ["sandbox"] if i % 2 == 0 else [],
                }
            )

        an_names = ["MaxBounty", "ClickDealer", "Ünïcode Affiliates ✨"]
        self.affiliate_networks: list[dict[str, Any]] = [
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
        self.offers: list[dict[str, Any]] = []
        self.offer_an: list[int] = []
        self.offer_payout: list[int] = []
        self.offer_country: list[int] = []
        for i in range(n_offers):
            an = i % len(an_names)
            country = rng.randrange(n_countries)
            payout = rng.randint(150, 4500)
            code, cname, _ = COUNTRIES[country]
            postfix = f"Offer {i + 1}" if i != 4 else "Offre spéciale \u2013 Ünïcode 🎁"
            self.offers.append(
                {
                    "id": random_uuid(rng),
                    "name": f"{an_names[an]} - {cname} - {postfix}",
                    "namePostfix": postfix,
                    "deleted": i in archived_offers,
                    "url": f"https://offers{an}.example/click?o={i + 1}&cid={{clickid}}",
                    "affiliateNetwork": {"id": self.affiliate_networks[an]["id"]},
                    "payout": (
                        {"type": "MANUAL", "value": payout / 100}
                        if i % 2 == 0
                        else {"type": "AUTO"}
                    ),
                    "currencyCode": "USD",
                    "country": {"code": code, "name": cname} if i % 2 == 0 else code,
                    "workspace": {"id": self.workspaces[ws_of(i)]["id"]},
                    "tags": ["sandbox", f"net-{an}"],
                    "allowedActions": ["EDIT", "ARCHIVE", "CLONE"],
                }
            )
            self.offer_an.append(an)
            self.offer_payout.append(payout)
            self.offer_country.append(country)

        n_landers = 6
        archived_landers = archive_set(n_landers)
        self.landers: list[dict[str, Any]] = []
        for i in range(n_landers):
            code, cname, _ = COUNTRIES[rng.randrange(n_countries)]
            postfix = f"Quiz Lander {i + 1}" if i != 3 else "Landing « Ünïcode » 🚀"
            self.landers.append(
                {
                    "id": random_uuid(rng),
                    "name": f"{cname} - {postfix}",
                    "namePostfix": postfix,
                    "deleted": i in archived_landers,
                    "url": f"https://landers.example/l{i + 1}/index.html",
                    "numberOfOffers": 1 + i % 2,
                    "country": code,
                    "workspace": {"id": self.workspaces[ws_of(i)]["id"]},
                    "tags": [],
                }
            )

        n_flows = 4
        self.flows: list[dict[str, Any]] = []
        self.flow_offers: list[list[int]] = []
        self.flow_landers: list[list[int]] = []
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
            self.flow_offers.append(offers)
            self.flow_landers.append(landers)
            countries = sorted({self.offer_country[o] for o in offers})
            flow_id = random_uuid(rng)
            self.flows.append(
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
                                {"lander": {"id": self.landers[lnd]["id"]}, "weight": 100}
                                for lnd in landers
                            ],
                            "offers": [
                                {"offer": {"id": self.offers[o]["id"]}, "weight": 100}
                                for o in offers
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

        archived_campaigns = archive_set(self.n_campaigns)
        self.campaigns: list[dict[str, Any]] = []
        self.camp_ts: list[int] = []
        self.camp_flow: list[int] = []
        self.camp_ws: list[int] = []
        self.camp_country: list[int] = []
        # (cost type, value in cents): CPC per visit, CPM per 1000 impressions, CPA per conversion
        self.camp_cost: list[tuple[str, int]] = []
        self.camp_params: list[tuple[int, float, float]] = []  # (max visits, ctr, cr)
        for c in range(self.n_campaigns):
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
            self.campaigns.append(
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
                        "id": self.traffic_sources[ts]["id"],
                        "name": ts_names[ts],
                    },
                    "redirectTarget": {"flow": {"id": self.flows[flow]["id"]}},
                    "tags": ["sandbox"] if c % 2 == 0 else ["sandbox", "ünïcode"],
                    "workspace": {"id": self.workspaces[ws]["id"]},
                    "currencyCode": "USD",
                    "customPostbacksConfiguration": [],
                }
            )
            self.camp_ts.append(ts)
            self.camp_flow.append(flow)
            self.camp_ws.append(ws)
            self.camp_country.append(country)
            self.camp_cost.append(cost)
            self.camp_params.append(
                (rng.randint(4, 30), rng.uniform(0.2, 0.6), rng.uniform(0.02, 0.08))
            )

        self._entities: dict[str, list[dict[str, Any]]] = {
            "workspace": self.workspaces,
            "traffic-source": self.traffic_sources,
            "affiliate-network": self.affiliate_networks,
            "offer": self.offers,
            "lander": self.landers,
            "flow": self.flows,
            "campaign": self.campaigns,
        }
        self.archived: dict[str, list[bool]] = {
            kind: [bool(e.get("deleted", False)) for e in items]
            for kind, items in self._entities.items()
        }
        self.entity_index: dict[str, dict[str, int]] = {
            kind: {e["id"]: i for i, e in enumerate(items)}
            for kind, items in self._entities.items()
        }
        self.entity_workspace: dict[str, list[int]] = {
            kind: [0 if e.get("workspace", {}).get("id") == ws_public["id"] else 1 for e in items]
            for kind, items in self._entities.items()
        }

    def entities(self, kind: str, include_deleted: bool = True) -> list[dict[str, Any]]:
        """Return deep copies of the entities of ``kind`` (``campaign``, ``traffic-source``...)."""
        items = self._entities[kind]
        return [copy.deepcopy(e) for e in items if include_deleted or not e.get("deleted", False)]

    def entity(self, kind: str, entity_id: str) -> dict[str, Any] | None:
        """Return the entity of ``kind`` with id ``entity_id`` (a deep copy), or ``None``."""
        idx = self.entity_index[kind].get(entity_id)
        return None if idx is None else copy.deepcopy(self._entities[kind][idx])

    def raw_entities(self, kind: str) -> list[dict[str, Any]]:
        """Return the stored entity dicts of ``kind`` (not copied: do not mutate)."""
        return self._entities[kind]
