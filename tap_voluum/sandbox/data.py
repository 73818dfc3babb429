"""Deterministic Voluum-like dataset for the sandbox.

Everything is generated from ``random.Random(seed)``: the entities (workspaces, traffic sources,
affiliate networks, offers, landers, flows, campaigns), the hourly traffic events, the individual
conversions and the event log.  Money is kept in integer cents.  Events are stored column-wise
(parallel lists indexed by event number, sorted by visit time) so reports can aggregate quickly.

The ``truth_*`` helpers recompute expected numbers straight from the raw events and conversions
with plain ``datetime``/``zoneinfo`` code, independently of the report engine in ``reports.py``.
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import inspect
import random
import threading
import uuid
import weakref
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
DAY_MS = 86_400_000
_M64 = (1 << 64) - 1
_B32 = "0123456789ABCDEFGHIJKLMNOPQRSTUV"

# (code, name, ((region, city), ...))
COUNTRIES: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("US", "United States", (("California", "San Jose"), ("New York", "New York"))),
    ("GB", "United Kingdom", (("England", "London"), ("Scotland", "Edinburgh"))),
    ("DE", "Germany", (("Bavaria", "München"), ("Berlin", "Berlin"))),
    ("FR", "France", (("Île-de-France", "Paris"), ("Provence-Alpes-Côte d'Azur", "Nice"))),
    ("BR", "Brazil", (("São Paulo", "São Paulo"), ("Rio de Janeiro", "Rio de Janeiro"))),
    ("IN", "India", (("Maharashtra", "Mumbai"), ("Karnataka", "Bengaluru"))),
    ("CA", "Canada", (("Ontario", "Toronto"), ("Québec", "Montréal"))),
    ("MX", "Mexico", (("Jalisco", "Guadalajara"), ("Ciudad de México", "Ciudad de México"))),
    ("JP", "Japan", (("Tokyo", "Tokyo"), ("Osaka", "Osaka"))),
    ("CI", "Côte d'Ivoire", (("Abidjan", "Abidjan"),)),
)
# (name, versions, deviceName, ((brand, model), ...), browser indexes)
OPERATING_SYSTEMS: tuple[
    tuple[str, tuple[str, ...], str, tuple[tuple[str, str], ...], tuple[int, ...]], ...
] = (
    (
        "Android",
        ("14", "13", "12"),
        "Mobile",
        (("Samsung", "Galaxy S23"), ("Xiaomi", "Redmi Note 12"), ("Google", "Pixel 8")),
        (0, 4, 3),
    ),
    ("iOS", ("17.4", "16.6"), "Mobile", (("Apple", "iPhone 15"), ("Apple", "iPhone 13")), (1, 0)),
    ("Windows", ("11", "10"), "Desktop", (("Unknown", "Unknown"),), (2, 5, 3)),
    ("macOS", ("14", "13"), "Desktop", (("Apple", "Macintosh"),), (1, 2, 3)),
    ("Linux", ("",), "Desktop", (("Unknown", "Unknown"),), (2, 3)),
)
BROWSERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Chrome Mobile", ("124", "123")),
    ("Safari", ("17", "16")),
    ("Chrome", ("124", "122")),
    ("Firefox", ("125",)),
    ("Samsung Internet", ("24",)),
    ("Edge", ("124",)),
)
# (connectionType, connectionTypeName, isp, mobileCarrier)
CONNECTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("MOBILE", "Mobile", "T-Mobile", "T-Mobile"),
    ("BROADBAND", "Broadband/Cable", "Comcast", ""),
    ("MOBILE", "Mobile", "Vodafone", "Vodafone"),
    ("BROADBAND", "Broadband/Cable", "Orange", ""),
)
# (conversionTypeId, conversionType, label of customConversionsN, revenue factor %, transactionId)
CONVERSION_TYPES: tuple[tuple[int, str, str, int, str], ...] = (
    (1, "lead", "Lead", 100, "lead"),
    (2, "deposit", "Deposit", 300, "deposit"),
    (3, "install", "Install", 50, ""),
    (4, "purchase", "Purchase", 200, ""),
    (5, "view", "View", 0, ""),
)
_TYPE_CUMULATIVE = (0.45, 0.70, 0.80, 0.92, 1.01)
CV2_VALUES = ("banner-300x250", "native-feed", "push", "pop", "Ünïcode-slot ✨")
CV3_VALUES = ("", "sub-a", "sub-b", "sub-c")
# Fixed conversion rates from USD cents: (numerator, denominator).
CURRENCY_RATES: dict[str, tuple[int, int]] = {"USD": (1, 1), "EUR": (92, 100), "GBP": (79, 100)}

ENTITY_KINDS = (
    "workspace",
    "traffic-source",
    "affiliate-network",
    "offer",
    "lander",
    "flow",
    "campaign",
)
ENTITY_DIMS = ("campaign", "offer", "lander", "flow", "traffic-source", "affiliate-network")
CUSTOM_VARIABLE_DIMS = tuple(f"custom-variable-{n}" for n in range(1, 11))
DIMENSIONS = (
    *ENTITY_DIMS,
    "country",
    "os",
    "browser",
    *CUSTOM_VARIABLE_DIMS,
    "day",
    "hour",
)
_CATEGORY = {
    "campaign": "CAMPAIGN",
    "offer": "OFFER",
    "lander": "LANDER",
    "flow": "FLOW",
    "traffic-source": "TRAFFIC_SOURCE",
    "affiliate-network": "AFFILIATE_NETWORK",
}
# Field carrying the identity of each dimension in report rows (also the truth-helper key).
KEY_FIELD = {
    "campaign": "campaignId",
    "offer": "offerId",
    "lander": "landerId",
    "flow": "flowId",
    "traffic-source": "trafficSourceId",
    "affiliate-network": "affiliateNetworkId",
    "country": "countryCode",
    "os": "os",
    "browser": "browser",
    **{f"custom-variable-{n}": f"customVariable{n}" for n in range(1, 11)},
    "day": "day",
    "hour": "hour",
}


def _alias_table() -> dict[str, str]:
    """Build the table of accepted ``groupBy``/``filterN`` spellings (normalised) -> dimension."""
    table: dict[str, str] = {}
    extra = {
        "campaign": ("campaign", "campaignid", "campaignname"),
        "offer": ("offer", "offerid", "offername"),
        "lander": ("lander", "landerid", "landername"),
        "flow": ("flow", "flowid", "flowname"),
        "traffic-source": ("trafficsource", "trafficsourceid", "trafficsourcename"),
        "affiliate-network": ("affiliatenetwork", "affiliatenetworkid", "affiliatenetworkname"),
        "country": ("country", "countrycode", "countryname"),
        "os": ("os",),
        "browser": ("browser",),
        "day": ("day", "date"),
        "hour": ("hour", "hourofday"),
    }
    for dim, names in extra.items():
        for name in names:
            table[name] = dim
    for n in range(1, 11):
        table[f"customvariable{n}"] = f"custom-variable-{n}"
    return table


_ALIASES = _alias_table()


def canonical_dimension(name: str) -> str | None:
    """Map an accepted spelling (``campaign``, ``campaignId``, ``custom-variable-1``...) to a dim.

    Matching ignores case, ``-`` and ``_``.  Returns ``None`` for unknown keys.
    """
    return _ALIASES.get(name.replace("-", "").replace("_", "").lower())


def convert_cents(cents: int, currency: str) -> int:
    """Convert USD cents to ``currency`` cents with the fixed sandbox rate, rounding half up."""
    num, den = CURRENCY_RATES[currency]
    if num == den:
        return cents
    return (cents * num * 2 + den) // (2 * den)


def iso_ms(ms: int) -> str:
    """Format epoch milliseconds as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def ampm(local_seconds: int) -> str:
    """Format local wall-clock epoch seconds as Voluum's ``YYYY-MM-DD hh:mm:ss AM`` string."""
    days, sec = divmod(local_seconds, 86400)
    hour, rem = divmod(sec, 3600)
    minute, second = divmod(rem, 60)
    day = date.fromordinal(EPOCH_ORDINAL + days)
    half = "AM" if hour < 12 else "PM"
    return f"{day.isoformat()} {hour % 12 or 12:02d}:{minute:02d}:{second:02d} {half}"


def _mix64(x: int) -> int:
    """Splitmix64 finaliser: a bijection on 64-bit integers (distinct inputs give distinct ids)."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _b32(x: int, width: int) -> str:
    """Encode the low ``5 * width`` bits of ``x`` in an upper-case base-32 alphabet."""
    out = []
    for _ in range(width):
        out.append(_B32[x & 31])
        x >>= 5
    return "".join(out)


def _uuid(rng: random.Random) -> str:
    """Return a uuid4-shaped string drawn from ``rng``."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class TzContext:
    """A time zone with UTC offsets cached per 15-minute slot (transitions fall on slot edges)."""

    def __init__(self, name: str) -> None:
        """Load ``name`` with zoneinfo; raises ``ValueError`` when the zone is unknown."""
        try:
            self.zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, IsADirectoryError) as exc:
            raise ValueError(f"unknown time zone {name!r}") from exc
        self.name = name
        self._slots: dict[int, int] = {}

    def offset(self, ts: int) -> int:
        """UTC offset in seconds in force at epoch second ``ts``."""
        slot = ts // 900
        off = self._slots.get(slot)
        if off is None:
            delta = datetime.fromtimestamp(slot * 900, self.zone).utcoffset()
            off = int(delta.total_seconds()) if delta is not None else 0
            self._slots[slot] = off
        return off

    def local_seconds(self, ts_list: Sequence[int]) -> list[int]:
        """Wall-clock seconds (epoch-based, as if the local time were UTC) for each timestamp."""
        if not ts_list:
            return []
        first_slot = min(ts_list) // 900
        last_slot = max(ts_list) // 900
        if last_slot - first_slot <= 200_000:
            offsets = {self.offset(slot * 900) for slot in range(first_slot, last_slot + 1)}
            if len(offsets) == 1:  # no transition in range: one offset for all
                off = offsets.pop()
                return [ts + off for ts in ts_list]
        slots = self._slots
        out: list[int] = []
        append = out.append
        for ts in ts_list:
            cached = slots.get(ts // 900)
            append(ts + (self.offset(ts) if cached is None else cached))
        return out

    def to_utc(self, local: datetime) -> int:
        """Epoch seconds of the naive wall-clock ``local`` read in this zone (fold=0 in gaps)."""
        return int(local.replace(tzinfo=self.zone).timestamp())


_TZ_CACHE: dict[str, TzContext] = {}
_TZ_LOCK = threading.Lock()


def tz_context(name: str) -> TzContext:
    """Return a shared :class:`TzContext` for ``name`` (``ValueError`` when unknown)."""
    ctx = _TZ_CACHE.get(name)
    if ctx is None:
        ctx = TzContext(name)
        with _TZ_LOCK:
            ctx = _TZ_CACHE.setdefault(name, ctx)
    return ctx


class Dataset:
    """Deterministic accounts data: entities, traffic events, conversions and the event log.

    Args:
        seed: seed of ``random.Random``; equal arguments give identical data.
        start: first UTC day of traffic; default: ``days`` days ending today (UTC).
        days: number of UTC days with traffic.
        campaigns: number of campaigns.
        events_per_campaign_hour: traffic events per campaign and UTC hour (some hours are empty).
        zones: number of distinct ``customVariable1`` values (``zone-0000`` ...).

    """

    def __init__(
        self,
        seed: int = 1,
        *,
        start: date | None = None,
        days: int = 60,
        campaigns: int = 12,
        events_per_campaign_hour: int = 3,
        zones: int = 40,
    ) -> None:
        """Generate the whole dataset."""
        if days < 1 or campaigns < 1 or zones < 1 or events_per_campaign_hour < 0:
            raise ValueError(
                "days, campaigns and zones must be >= 1; events_per_campaign_hour >= 0"
            )
        if start is None:
            start = datetime.now(UTC).date() - timedelta(days=days - 1)
        self.seed = seed
        self.start = start
        self.days = days
        self.n_campaigns = campaigns
        self.events_per_campaign_hour = events_per_campaign_hour
        self.n_zones = zones
        self.start_ts = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
        self.end_ts = self.start_ts + days * 86400
        digest = hashlib.sha256(f"voluum-sandbox:{seed}".encode()).hexdigest()
        self.access_id = f"sandbox-id-{seed}"
        self.access_key = f"sandbox-key-{digest[:32]}"
        self.email = "sandbox@example.com"
        self.password = f"sandbox-pass-{digest[32:44]}"
        rng = random.Random(seed)
        self._salt = rng.getrandbits(64)
        self.zone_values = [f"zone-{n:04d}" for n in range(zones)]
        self._build_entities(rng)
        self._build_traffic(random.Random(rng.getrandbits(64)))
        self._build_dimension_tables()
        self._build_event_log(random.Random(rng.getrandbits(64)))
        self._lock = threading.Lock()
        self._currency_cache: dict[tuple[str, str], list[int]] = {}
        self._campaign_events: list[list[int]] | None = None
        self._campaign_event_ts: list[list[int]] | None = None
        self._listeners: list[weakref.WeakMethod[Callable[[], Any]] | Callable[[], Any]] = []
        self._late_lock = threading.Lock()
        self._late_calls = 0

    # ------------------------------------------------------------------ entities

    def _build_entities(self, rng: random.Random) -> None:  # noqa: PLR0912, PLR0915 - linear script
        """Create the entity dicts and the index arrays used by the report engine."""
        n_countries = len(COUNTRIES)
        ws_public = {"id": _uuid(rng), "name": "Public"}
        ws_team = {"id": _uuid(rng), "name": "Media Buying \u2013 Équipe Ünïcode"}
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
                    "id": _uuid(rng),
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
                "id": _uuid(rng),
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
                    "id": _uuid(rng),
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
                    "id": _uuid(rng),
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
            flow_id = _uuid(rng)
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
                            "id": _uuid(rng),
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
            camp_id = _uuid(rng)
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

    # ------------------------------------------------------------------ traffic

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
                        while r >= _TYPE_CUMULATIVE[t]:
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

    # ------------------------------------------------------------------ dimensions

    def _build_dimension_tables(self) -> None:
        """Per-dimension lookup tables: event columns, per-entity mappings and value labels."""
        self._direct: dict[str, list[int]] = {
            "campaign": self.ev_c,
            "offer": self.ev_o,
            "lander": self.ev_l,
            "country": self.ev_country,
            "os": self.ev_os,
            "browser": self.ev_br,
            "custom-variable-1": self.ev_cv1,
            "custom-variable-2": self.ev_cv2,
            "custom-variable-3": self.ev_cv3,
        }
        self._derived: dict[str, tuple[list[int], list[int]]] = {
            "flow": (self.camp_flow, self.ev_c),
            "traffic-source": (self.camp_ts, self.ev_c),
            "affiliate-network": (self.offer_an, self.ev_o),
        }
        self._labels: dict[str, list[Any]] = {
            **{d: [e["id"] for e in self._entities[d]] for d in ENTITY_DIMS},
            "country": [c[0] for c in COUNTRIES],
            "os": [o[0] for o in OPERATING_SYSTEMS],
            "browser": [b[0] for b in BROWSERS],
            "custom-variable-1": self.zone_values,
            "custom-variable-2": list(CV2_VALUES),
            "custom-variable-3": list(CV3_VALUES),
            **{d: [""] for d in CUSTOM_VARIABLE_DIMS[3:]},
        }

    def dim_values(
        self, dim: str, events: Sequence[int], ts: Sequence[int], tzc: TzContext
    ) -> list[int]:
        """Integer value of dimension ``dim`` for each event index (``ts`` used for day/hour)."""
        direct = self._direct.get(dim)
        if direct is not None:
            if isinstance(events, range) and events.step == 1:
                return direct[events.start : events.stop]
            return list(map(direct.__getitem__, events))
        derived = self._derived.get(dim)
        if derived is not None:
            table, col = derived
            return [table[col[i]] for i in events]
        if dim in ("day", "hour"):
            local = tzc.local_seconds(ts)
            if dim == "day":
                return [s // 86400 for s in local]
            return [s % 86400 // 3600 for s in local]
        if dim in self._labels:  # customVariable4..10 are always empty
            return [0] * len(events)
        raise KeyError(dim)

    def event_value(self, dim: str, event: int) -> int:
        """Integer value of a non-time dimension for one event."""
        direct = self._direct.get(dim)
        if direct is not None:
            return direct[event]
        derived = self._derived.get(dim)
        if derived is not None:
            return derived[0][derived[1][event]]
        return 0

    def dim_label(self, dim: str, value: int) -> Any:
        """Identity value shown in rows for a dimension value (id, code, string, day or hour)."""
        if dim == "day":
            return date.fromordinal(EPOCH_ORDINAL + value).isoformat()
        if dim == "hour":
            return value
        return self._labels[dim][value]

    def dim_cardinality(self, dim: str) -> int | None:
        """Return the number of values of a non-time dimension (``None`` for day/hour)."""
        return None if dim in ("day", "hour") else len(self._labels[dim])

    # ------------------------------------------------------------------ per-visit details

    def visit_id(self, event: int, j: int) -> str:
        """Voluum click id of visit ``j`` of ``event`` (unique; conversions refer to it)."""
        x = _mix64(((self.ev_uid[event] << 12) | j) ^ self._salt)
        return "c" + _b32(x, 13) + _b32(_mix64(x), 9)

    def visit_details(self, event: int, j: int = 0) -> dict[str, Any]:
        """Geo/device/network fields of visit ``j`` of ``event`` (deterministic)."""
        uid = self.ev_uid[event]
        h = _mix64(uid ^ self._salt ^ 0x5A5A)
        code, cname, places = COUNTRIES[self.ev_country[event]]
        region, city = places[h % len(places)]
        os_name, os_versions, device, models, _ = OPERATING_SYSTEMS[self.ev_os[event]]
        brand, model = models[(h >> 8) % len(models)]
        br_name, br_versions = BROWSERS[self.ev_br[event]]
        conn, conn_name, isp, carrier = CONNECTIONS[(h >> 16) % len(CONNECTIONS)]
        ip_bits = _mix64(((uid << 12) | j) ^ self._salt ^ 0xA5A5)
        first = (23, 31, 46, 78, 89, 102, 151, 185, 203)[ip_bits % 9]
        return {
            "clickId": self.visit_id(event, j),
            "externalId": f"ts-{_mix64(((uid << 12) | j) ^ 0x77) & 0xFFFFFFFFFF:010x}",
            "countryCode": code,
            "countryName": cname,
            "region": region,
            "city": city,
            "os": os_name,
            "osVersion": os_versions[(h >> 24) % len(os_versions)],
            "browser": br_name,
            "browserVersion": br_versions[(h >> 28) % len(br_versions)],
            "device": device.upper(),
            "deviceName": device,
            "brand": brand,
            "model": model,
            "connectionType": conn,
            "connectionTypeName": conn_name,
            "isp": isp,
            "mobileCarrier": carrier,
            "ip": f"{first}.{ip_bits >> 8 & 255}.{ip_bits >> 16 & 255}.{1 + (ip_bits >> 24) % 254}",
            "customVariable1": self.zone_values[self.ev_cv1[event]],
            "customVariable2": CV2_VALUES[self.ev_cv2[event]],
            "customVariable3": CV3_VALUES[self.ev_cv3[event]],
            **{f"customVariable{n}": "" for n in range(4, 11)},
        }

    def attribution(self, event: int) -> dict[str, Any]:
        """Ids and names of the entities an event is attributed to."""
        c = self.ev_c[event]
        o = self.ev_o[event]
        lnd = self.ev_l[event]
        ts = self.traffic_sources[self.camp_ts[c]]
        an = self.affiliate_networks[self.offer_an[o]]
        flow = self.flows[self.camp_flow[c]]
        return {
            "campaignId": self.campaigns[c]["id"],
            "campaignName": self.campaigns[c]["name"],
            "offerId": self.offers[o]["id"],
            "offerName": self.offers[o]["name"],
            "landerId": self.landers[lnd]["id"],
            "landerName": self.landers[lnd]["name"],
            "flowId": flow["id"],
            "flowName": flow["name"],
            "trafficSourceId": ts["id"],
            "trafficSourceName": ts["name"],
            "affiliateNetworkId": an["id"],
            "affiliateNetworkName": an["name"],
        }

    def _campaign_index(self) -> tuple[list[list[int]], list[list[int]]]:
        """Per campaign: event indexes and their visit times, in time order (built lazily)."""
        if self._campaign_events is None or self._campaign_event_ts is None:
            events: list[list[int]] = [[] for _ in range(self.n_campaigns)]
            times: list[list[int]] = [[] for _ in range(self.n_campaigns)]
            for i, (c, ts) in enumerate(zip(self.ev_c, self.ev_ts, strict=True)):
                events[c].append(i)
                times[c].append(ts)
            with self._lock:
                self._campaign_events, self._campaign_event_ts = events, times
            return events, times
        return self._campaign_events, self._campaign_event_ts

    def latest_visits(
        self, campaign: int, limit: int, before_ts: int, clicks_only: bool = False
    ) -> list[tuple[int, int]]:
        """Newest-first ``(event, visit number)`` of a campaign's visits before ``before_ts``.

        With ``clicks_only`` only the visits that clicked through (visit numbers ``< clicks``).
        """
        events, times = self._campaign_index()
        evs = events[campaign]
        pos = bisect.bisect_left(times[campaign], before_ts) - 1
        out: list[tuple[int, int]] = []
        while pos >= 0 and len(out) < limit:
            e = evs[pos]
            n = self.ev_clicks[e] if clicks_only else self.ev_visits[e]
            for j in range(n - 1, -1, -1):
                out.append((e, j))
                if len(out) >= limit:
                    break
            pos -= 1
        return out

    # ------------------------------------------------------------------ event log

    def _build_event_log(self, rng: random.Random) -> None:
        """Create the entity timelines (createdTime/updatedTime) and the matching event log."""
        users = [
            {"id": _uuid(rng), "name": "Sandbox Owner"},
            {"id": _uuid(rng), "name": "Média Buyer Ünïcode"},
        ]
        client_id = _uuid(rng)
        start_ms = self.start_ts * 1000
        # Edits spread over the data range, never after today's UTC midnight (no future edits):
        # regular edits end 3 days before the horizon, the same-second pairs come after them.
        today_ms = int(datetime.now(UTC).timestamp() * 1000) // DAY_MS * DAY_MS
        horizon_ms = min(self.end_ts * 1000 - 3_600_000, max(today_ms, start_ms + DAY_MS))
        regular_end = horizon_ms - 3 * DAY_MS
        entries: list[dict[str, Any]] = []

        def add(kind: str, ent: dict[str, Any], when: int, action: str, changes: list[Any]) -> None:
            user = users[0] if rng.random() < 0.7 else users[1]
            entries.append(
                {
                    "id": _uuid(rng),
                    "clientId": client_id,
                    "editTime": when,
                    "actionType": action,
                    "category": _CATEGORY[kind],
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
                    "category": _CATEGORY[kind],
                    "entityId": ent["id"],
                    "fieldName": field,
                    "nestedChanges": [],
                    "simpleChanges": [
                        {
                            "category": _CATEGORY[kind],
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
            for i, ent in enumerate(self._entities[kind]):
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
            ("campaign", next((i for i, a in enumerate(self.archived["campaign"]) if not a), 0)),
            ("offer", next((i for i, a in enumerate(self.archived["offer"]) if not a), 0)),
            ("lander", next((i for i, a in enumerate(self.archived["lander"]) if not a), 0)),
            ("flow", 0),
        ]
        base = regular_end // 1000 * 1000 + DAY_MS + 7 * 60_000
        for (kind, i), when in zip(  # noqa: B905 - fixed tuples
            pairs, (base + 120, base + 845, base + DAY_MS + 500, base + DAY_MS + 500)
        ):
            ent = self._entities[kind][i]
            add(kind, ent, when, "CHANGE", change(kind, ent, "tags", "[]", '["sandbox"]'))
            ent["updatedTime"] = iso_ms(when)
        entries.sort(key=lambda e: (e["editTime"], e["id"]))
        self.event_log: list[dict[str, Any]] = entries
        self.users = users

    # ------------------------------------------------------------------ late data

    def add_change_listener(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` after every change of the data (:meth:`add_late_data`).

        Bound methods are held weakly (a stopped server's report engine can go away); other
        callables strongly.  ``SandboxServer`` registers its report engine's ``clear_cache``.
        """
        ref: weakref.WeakMethod[Callable[[], Any]] | Callable[[], Any] = (
            weakref.WeakMethod(callback) if inspect.ismethod(callback) else callback
        )
        with self._late_lock:
            self._listeners[:] = [
                r for r in self._listeners if not isinstance(r, weakref.WeakMethod) or r()
            ]
            self._listeners.append(ref)

    def _data_changed(self) -> None:
        """Drop the dataset's derived caches and tell the listeners (report caches)."""
        with self._lock:
            self._currency_cache.clear()
            self._campaign_events = None
            self._campaign_event_ts = None
        for ref in list(self._listeners):
            if isinstance(ref, weakref.WeakMethod):
                method = ref()
                if method is not None:
                    method()
            else:
                ref()

    def add_late_data(
        self,
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
        """Add traffic, late conversions and event-log entries at/around the UTC instant ``at``.

        See :func:`tap_voluum.sandbox.late.add_late_data` (same arguments) for the placement
        rules and the returned description of what was added.  Call it between syncs, not
        while requests are being answered.
        """
        from .late import add_late_data  # noqa: PLC0415 - late.py imports this module

        return add_late_data(
            self,
            at,
            visits=visits,
            conversions=conversions,
            event_log_entries=event_log_entries,
            seed=seed,
            until=until,
            campaign_ids=campaign_ids,
            max_click_age=max_click_age,
        )

    # ------------------------------------------------------------------ truth helpers
    #
    # The truth helpers share nothing with the report engine's arithmetic: no TzContext, no
    # dimension tables (``_direct``/``_derived``/``_labels``/``archived``), no currency columns.
    # They read the raw event/conversion columns and the raw entity dicts, and use plain
    # ``datetime``/``zoneinfo``/``Decimal`` code.

    def _window(self, start_local: datetime, end_local: datetime, tz: str) -> tuple[int, int]:
        """UTC epoch bounds of a wall-clock window read in ``tz`` (naive datetimes)."""
        zone = ZoneInfo(tz)
        return (
            int(start_local.replace(tzinfo=zone).timestamp()),
            int(end_local.replace(tzinfo=zone).timestamp()),
        )

    def truth_totals(
        self,
        start_local: datetime,
        end_local: datetime,
        tz: str = "Etc/GMT",
        conversion_time_mode: str = "VISIT",
        *,
        currency: str = "USD",
        workspaces: Sequence[str] | None = None,
    ) -> dict[str, int]:
        """Totals over all traffic (archived entities included) for a wall-clock window in ``tz``.

        Visits/clicks/cost always count by visit time; conversions/revenue by visit time
        (``VISIT``) or postback time (``CONVERSION``).  Returns integer ``visits``,
        ``uniqueVisits``, ``clicks``, ``conversions``, ``cost_cents``, ``revenue_cents``,
        ``errors``, ``impressions``.  ``currency`` (USD, EUR, GBP) converts each event's cost
        and each conversion's revenue, rounded half up to the cent; ``workspaces`` (ids) keeps
        the campaigns of those workspaces only (as ``/report``'s ``workspaces=``).
        """
        view = _TruthView(self, currency, workspaces)
        mode = _truth_mode(conversion_time_mode)
        u0, u1 = self._window(start_local, end_local, tz)
        out = dict.fromkeys(
            ("visits", "uniqueVisits", "clicks", "conversions", "cost_cents", "revenue_cents"), 0
        )
        out["errors"] = out["impressions"] = 0
        for i, ts in enumerate(self.ev_ts):
            if u0 <= ts < u1 and view.in_workspaces(i):
                out["visits"] += self.ev_visits[i]
                out["uniqueVisits"] += self.ev_uv[i]
                out["clicks"] += self.ev_clicks[i]
                out["cost_cents"] += view.money(self.ev_cost[i])
                out["errors"] += self.ev_errors[i]
                out["impressions"] += self.ev_impr[i]
        for r, event in enumerate(self.cv_event):
            when = self.ev_ts[event] if mode == "VISIT" else self.cv_post[r]
            if u0 <= when < u1 and view.in_workspaces(event):
                out["conversions"] += 1
                out["revenue_cents"] += view.money(self.cv_rev[r])
        return out

    def truth_rows(
        self,
        group_by: Sequence[str],
        start_local: datetime,
        end_local: datetime,
        tz: str = "Etc/GMT",
        conversion_time_mode: str = "VISIT",
        *,
        include: str = "ACTIVE",
        currency: str = "USD",
        workspaces: Sequence[str] | None = None,
    ) -> dict[tuple, dict[str, int]]:
        """Exact rows a ``/report`` call would return, keyed by the group key.

        ``group_by`` takes any accepted spelling.  The key holds, per dimension, the value of
        ``KEY_FIELD[dim]`` in the row: entity id, country code, os/browser/custom-variable
        string, ``day`` as ``YYYY-MM-DD`` or ``hour`` as int.  Values are integer ``visits``,
        ``uniqueVisits``, ``clicks``, ``conversions``, ``cost_cents``, ``revenue_cents``,
        ``errors``, ``impressions``, ``customConversionsN`` and ``customRevenueN_cents``.
        Amounts are in ``currency`` (USD, EUR, GBP: converted per event cost and per
        conversion revenue, rounded half up to the cent); ``workspaces`` (ids) keeps the
        campaigns of those workspaces only.  Only groups with traffic (visits or conversions)
        appear.
        """
        dims = [canonical_dimension(g) or g for g in group_by]
        view = _TruthView(self, currency, workspaces)
        mode = _truth_mode(conversion_time_mode)
        include = include.upper()
        if include not in ("ACTIVE", "ARCHIVED", "ALL", "TRAFFIC", "ENTITY"):
            raise ValueError(f"unknown include {include!r}")
        zone = ZoneInfo(tz)
        u0, u1 = self._window(start_local, end_local, tz)
        rows: dict[tuple, dict[str, int]] = {}

        def row(key: tuple) -> dict[str, int]:
            found = rows.get(key)
            if found is None:
                found = dict.fromkeys(
                    (
                        "visits",
                        "uniqueVisits",
                        "clicks",
                        "conversions",
                        "cost_cents",
                        "revenue_cents",
                        "errors",
                        "impressions",
                        *(f"customConversions{n}" for n in range(1, 6)),
                        *(f"customRevenue{n}_cents" for n in range(1, 6)),
                    ),
                    0,
                )
                rows[key] = found
            return found

        for i, ts in enumerate(self.ev_ts):
            if u0 <= ts < u1 and view.keep(dims, i, include):
                acc = row(view.key(dims, i, ts, zone))
                acc["visits"] += self.ev_visits[i]
                acc["uniqueVisits"] += self.ev_uv[i]
                acc["clicks"] += self.ev_clicks[i]
                acc["cost_cents"] += view.money(self.ev_cost[i])
                acc["errors"] += self.ev_errors[i]
                acc["impressions"] += self.ev_impr[i]
        for r, event in enumerate(self.cv_event):
            when = self.ev_ts[event] if mode == "VISIT" else self.cv_post[r]
            if u0 <= when < u1 and view.keep(dims, event, include):
                acc = row(view.key(dims, event, when, zone))
                slot = CONVERSION_TYPES[self.cv_type[r]][0]
                revenue = view.money(self.cv_rev[r])
                acc["conversions"] += 1
                acc["revenue_cents"] += revenue
                acc[f"customConversions{slot}"] += 1
                acc[f"customRevenue{slot}_cents"] += revenue
        return rows

    @staticmethod
    def row_key(row: dict[str, Any], group_by: Sequence[str]) -> tuple:
        """Extract from a report row the key :meth:`truth_rows` uses for the same ``group_by``."""
        return tuple(row[KEY_FIELD[canonical_dimension(g) or g]] for g in group_by)

    def conversions_between(
        self, start_local: datetime, end_local: datetime, tz: str = "Etc/GMT"
    ) -> list[dict[str, Any]]:
        """All conversions with postback time in the wall-clock window, ordered like the API.

        Each item: ``clickId``, ``conversionTypeId``, ``conversionType``, ``transactionId``,
        ``revenue_cents`` (USD), ``postback_ts``/``visit_ts`` (epoch seconds),
        ``postbackTimestamp``/``visitTimestamp`` (``YYYY-MM-DD hh:mm:ss AM`` in ``tz``),
        ``campaignId`` and ``offerId``.
        """
        zone = ZoneInfo(tz)
        u0, u1 = self._window(start_local, end_local, tz)
        picked = sorted((post, r) for r, post in enumerate(self.cv_post) if u0 <= post < u1)
        out = []
        for post, r in picked:
            event = self.cv_event[r]
            type_id, type_name, _, _, txn = CONVERSION_TYPES[self.cv_type[r]]
            out.append(
                {
                    "clickId": self.visit_id(event, self.cv_click[r]),
                    "conversionTypeId": type_id,
                    "conversionType": type_name,
                    "transactionId": txn,
                    "revenue_cents": self.cv_rev[r],
                    "postback_ts": post,
                    "visit_ts": self.ev_ts[event],
                    "postbackTimestamp": datetime.fromtimestamp(post, zone).strftime(
                        "%Y-%m-%d %I:%M:%S %p"
                    ),
                    "visitTimestamp": datetime.fromtimestamp(self.ev_ts[event], zone).strftime(
                        "%Y-%m-%d %I:%M:%S %p"
                    ),
                    "campaignId": self.campaigns[self.ev_c[event]]["id"],
                    "offerId": self.offers[self.ev_o[event]]["id"],
                }
            )
        return out


# --------------------------------------------------------------------------- truth's own reading

# Fixed sandbox rates (README), kept apart from ``CURRENCY_RATES`` so the truth does not share
# the report engine's conversion code.
_TRUTH_RATES: dict[str, Decimal] = {
    "USD": Decimal(1),
    "EUR": Decimal("0.92"),
    "GBP": Decimal("0.79"),
}


def _truth_mode(mode: str) -> str:
    """Validate a conversion time mode (``VISIT`` or ``CONVERSION``, any case)."""
    upper = mode.upper()
    if upper not in ("VISIT", "CONVERSION"):
        raise ValueError(f"unknown conversion_time_mode {mode!r}")
    return upper


class _TruthView:
    """How the truth helpers read the raw records: dimension values, archived flags, workspaces
    and money, from the entity dicts and the event columns (not the report engine's tables).
    """  # noqa: D205

    def __init__(self, ds: Dataset, currency: str, workspaces: Sequence[str] | None) -> None:
        """Index the raw entity dicts of ``ds`` for one truth computation."""
        code = currency.upper()
        if code not in _TRUTH_RATES:
            raise ValueError(f"unsupported currency {currency!r}")
        self.rate = _TRUTH_RATES[code]
        self._money: dict[int, int] = {}
        campaigns = ds.raw_entities("campaign")
        offers = ds.raw_entities("offer")
        landers = ds.raw_entities("lander")
        self.deleted = {
            e["id"]: bool(e.get("deleted", False)) for d in ENTITY_DIMS for e in ds.raw_entities(d)
        }
        camp_id = [c["id"] for c in campaigns]
        camp_flow = [c["redirectTarget"]["flow"]["id"] for c in campaigns]
        camp_source = [c["trafficSource"]["id"] for c in campaigns]
        offer_id = [o["id"] for o in offers]
        offer_network = [o["affiliateNetwork"]["id"] for o in offers]
        lander_id = [lnd["id"] for lnd in landers]
        zones = ds.zone_values
        ev_c, ev_o, ev_l = ds.ev_c, ds.ev_o, ds.ev_l
        ev_country, ev_os, ev_br = ds.ev_country, ds.ev_os, ds.ev_br
        ev_cv1, ev_cv2, ev_cv3 = ds.ev_cv1, ds.ev_cv2, ds.ev_cv3
        self.ev_c = ev_c
        self.value: dict[str, Any] = {
            "campaign": lambda e: camp_id[ev_c[e]],
            "offer": lambda e: offer_id[ev_o[e]],
            "lander": lambda e: lander_id[ev_l[e]],
            "flow": lambda e: camp_flow[ev_c[e]],
            "traffic-source": lambda e: camp_source[ev_c[e]],
            "affiliate-network": lambda e: offer_network[ev_o[e]],
            "country": lambda e: COUNTRIES[ev_country[e]][0],
            "os": lambda e: OPERATING_SYSTEMS[ev_os[e]][0],
            "browser": lambda e: BROWSERS[ev_br[e]][0],
            "custom-variable-1": lambda e: zones[ev_cv1[e]],
            "custom-variable-2": lambda e: CV2_VALUES[ev_cv2[e]],
            "custom-variable-3": lambda e: CV3_VALUES[ev_cv3[e]],
            **{d: (lambda e: "") for d in CUSTOM_VARIABLE_DIMS[3:]},
        }
        if isinstance(workspaces, str):
            workspaces = [w for w in workspaces.split(",") if w.strip()]
        if workspaces:
            wanted = {w.strip() for w in workspaces}
            self.campaign_ok: list[bool] | None = [
                c["workspace"]["id"] in wanted for c in campaigns
            ]
        else:
            self.campaign_ok = None

    def money(self, usd_cents: int) -> int:
        """USD cents in the view's currency, rounded half up to the cent."""
        if self.rate == 1:
            return usd_cents
        found = self._money.get(usd_cents)
        if found is None:
            exact = Decimal(usd_cents) * self.rate
            found = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
            self._money[usd_cents] = found
        return found

    def in_workspaces(self, event: int) -> bool:
        """Whether the event's campaign belongs to the requested workspaces."""
        return self.campaign_ok is None or self.campaign_ok[self.ev_c[event]]

    def keep(self, dims: Sequence[str], event: int, include: str) -> bool:
        """Workspaces, then ``include``: ACTIVE drops events whose grouped entity is archived."""
        if not self.in_workspaces(event):
            return False
        if include in ("ALL", "TRAFFIC", "ENTITY"):
            return True
        archived = any(self.deleted[self.value[d](event)] for d in dims if d in ENTITY_DIMS)
        return archived if include == "ARCHIVED" else not archived

    def key(self, dims: Sequence[str], event: int, ts: int, zone: ZoneInfo) -> tuple:
        """Group key of an event (day/hour from ``ts`` read in ``zone`` with plain datetime)."""
        local = datetime.fromtimestamp(ts, zone) if ("day" in dims or "hour" in dims) else None
        key: list[Any] = []
        for dim in dims:
            if dim == "day":
                assert local is not None
                key.append(local.strftime("%Y-%m-%d"))
            elif dim == "hour":
                assert local is not None
                key.append(local.hour)
            else:
                key.append(self.value[dim](event))
        return tuple(key)
