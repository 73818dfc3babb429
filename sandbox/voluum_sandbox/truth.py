"""The truth oracle: expected ``/report`` rows and totals and ``/report/conversions`` items.

They are recomputed straight from the raw events, conversions and entity dicts, sharing nothing
with the report engine they check: no query parsing, no dimension tables (``dimensions.py``), no
``TzContext`` local-window arithmetic (``timezones.py``), no currency columns. Wall clocks are
read with plain ``datetime``/``zoneinfo`` code and money converted with ``Decimal``. Only the
fixed vocabulary (``catalog.py``) is shared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .catalog import (
    BROWSERS,
    CONVERSION_TYPES,
    COUNTRIES,
    CUSTOM_VARIABLE_DIMS,
    CV2_VALUES,
    CV3_VALUES,
    ENTITY_DIMS,
    KEY_FIELD,
    OPERATING_SYSTEMS,
    canonical_dimension,
)

if TYPE_CHECKING:
    from .store import Store


def _window(start_local: datetime, end_local: datetime, tz: str) -> tuple[int, int]:
    """UTC epoch bounds of a wall-clock window read in ``tz`` (naive datetimes)."""
    zone = ZoneInfo(tz)
    return (
        int(start_local.replace(tzinfo=zone).timestamp()),
        int(end_local.replace(tzinfo=zone).timestamp()),
    )


def truth_totals(
    ds: Store,
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
    view = _TruthView(ds, currency, workspaces)
    mode = _truth_mode(conversion_time_mode)
    u0, u1 = _window(start_local, end_local, tz)
    cut = ds.visible_before()
    u1_events = u1 if cut is None else min(u1, cut)
    cost = _costs(ds, cut)
    out = dict.fromkeys(
        ("visits", "uniqueVisits", "clicks", "conversions", "cost_cents", "revenue_cents"), 0
    )
    out["errors"] = out["impressions"] = 0
    for i, ts in enumerate(ds.ev_ts):
        if u0 <= ts < u1_events and view.in_workspaces(i):
            out["visits"] += ds.ev_visits[i]
            out["uniqueVisits"] += ds.ev_uv[i]
            out["clicks"] += ds.ev_clicks[i]
            out["cost_cents"] += view.money(cost(i))
            out["errors"] += ds.ev_errors[i]
            out["impressions"] += ds.ev_impr[i]
    for r, event in enumerate(ds.cv_event):
        when = ds.ev_ts[event] if mode == "VISIT" else ds.cv_post[r]
        if u0 <= when < u1 and _happened(ds.cv_post[r], cut) and view.in_workspaces(event):
            out["conversions"] += 1
            out["revenue_cents"] += view.money(ds.cv_rev[r])
    return out


def truth_rows(  # noqa: PLR0917 - the positional order of the README
    ds: Store,
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
    view = _TruthView(ds, currency, workspaces)
    mode = _truth_mode(conversion_time_mode)
    include = include.upper()
    if include not in ("ACTIVE", "ARCHIVED", "ALL", "TRAFFIC"):
        raise ValueError(f"unknown include {include!r}")
    zone = ZoneInfo(tz)
    u0, u1 = _window(start_local, end_local, tz)
    cut = ds.visible_before()
    cost = _costs(ds, cut)
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

    for i, ts in enumerate(ds.ev_ts):
        if u0 <= ts < u1 and _happened(ts, cut) and view.keep(dims, i, include):
            acc = row(view.key(dims, i, ts, zone))
            acc["visits"] += ds.ev_visits[i]
            acc["uniqueVisits"] += ds.ev_uv[i]
            acc["clicks"] += ds.ev_clicks[i]
            acc["cost_cents"] += view.money(cost(i))
            acc["errors"] += ds.ev_errors[i]
            acc["impressions"] += ds.ev_impr[i]
    for r, event in enumerate(ds.cv_event):
        when = ds.ev_ts[event] if mode == "VISIT" else ds.cv_post[r]
        if u0 <= when < u1 and _happened(ds.cv_post[r], cut) and view.keep(dims, event, include):
            acc = row(view.key(dims, event, when, zone))
            slot = CONVERSION_TYPES[ds.cv_type[r]][0]
            revenue = view.money(ds.cv_rev[r])
            acc["conversions"] += 1
            acc["revenue_cents"] += revenue
            acc[f"customConversions{slot}"] += 1
            acc[f"customRevenue{slot}_cents"] += revenue
    return rows


def row_key(row: dict[str, Any], group_by: Sequence[str]) -> tuple:
    """Extract from a report row the key :meth:`truth_rows` uses for the same ``group_by``."""
    return tuple(row[KEY_FIELD[canonical_dimension(g) or g]] for g in group_by)


def conversions_between(
    ds: Store, start_local: datetime, end_local: datetime, tz: str = "Etc/GMT"
) -> list[dict[str, Any]]:
    """All conversions with postback time in the wall-clock window, ordered like the API.

    Each item: ``clickId``, ``conversionTypeId``, ``conversionType``, ``transactionId``,
    ``revenue_cents`` (USD), ``postback_ts``/``visit_ts`` (epoch seconds),
    ``postbackTimestamp``/``visitTimestamp`` (``YYYY-MM-DD hh:mm:ss AM`` in ``tz``),
    ``campaignId`` and ``offerId``.
    """
    zone = ZoneInfo(tz)
    u0, u1 = _window(start_local, end_local, tz)
    cut = ds.visible_before()
    picked = sorted(
        (post, r) for r, post in enumerate(ds.cv_post) if u0 <= post < u1 and _happened(post, cut)
    )
    out = []
    for post, r in picked:
        event = ds.cv_event[r]
        type_id, type_name, _, _, txn = CONVERSION_TYPES[ds.cv_type[r]]
        out.append(
            {
                "clickId": ds.visit_id(event, ds.cv_click[r]),
                "conversionTypeId": type_id,
                "conversionType": type_name,
                "transactionId": txn,
                "revenue_cents": ds.cv_rev[r],
                "postback_ts": post,
                "visit_ts": ds.ev_ts[event],
                "postbackTimestamp": datetime.fromtimestamp(post, zone).strftime(
                    "%Y-%m-%d %I:%M:%S %p"
                ),
                "visitTimestamp": datetime.fromtimestamp(ds.ev_ts[event], zone).strftime(
                    "%Y-%m-%d %I:%M:%S %p"
                ),
                "campaignId": ds.campaigns[ds.ev_c[event]]["id"],
                "offerId": ds.offers[ds.ev_o[event]]["id"],
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


def _happened(ts: int, cut: int | None) -> bool:
    """Whether an instant (epoch s) is before the clock's bound ``cut`` (``None``: always)."""
    return cut is None or ts < cut


def _costs(ds: Store, cut: int | None) -> Callable[[int], int]:
    """Event index -> USD cost as of ``cut``: generated cost + the plan's cost deltas landed."""
    extra: dict[int, int] = {}
    plan = ds.restatements
    if plan is not None:
        for land, uid, delta in zip(plan.cost_land, plan.cost_uid, plan.cost_delta, strict=True):
            if cut is None or land < cut:
                extra[uid] = extra.get(uid, 0) + delta
    base, uids = ds.ev_cost, ds.ev_uid
    return lambda i: base[i] + extra.get(uids[i], 0)


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

    def __init__(self, ds: Store, currency: str, workspaces: Sequence[str] | None) -> None:
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
        if include in ("ALL", "TRAFFIC"):
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
