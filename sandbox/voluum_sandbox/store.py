"""The account's records and their look-ups: the base of :class:`~voluum_sandbox.data.Dataset`.

:class:`Store` holds what the generators (``entities.py``, ``traffic.py``), late data
(``late.py``) and the truth oracle (``truth.py``) read and write: entity dicts and per-index
tables, the event log, the column-wise traffic events and conversion records, and the look-ups
the endpoints read (event ranges, currency columns, per-visit details), plus its change
listeners. It imports none of those modules; ``data.py`` builds a store from a seed.
"""

from __future__ import annotations

import bisect
import copy
import inspect
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from .catalog import (
    BROWSERS,
    CONNECTIONS,
    COUNTRIES,
    CV2_VALUES,
    CV3_VALUES,
    OPERATING_SYSTEMS,
    convert_cents,
)
from .formats import UTC, b32, instant_ms, mix64

if TYPE_CHECKING:
    from .restatement_plan import Restatements


def _clip(end_ts: int, cut: int | None) -> int:
    """``end_ts``, no later than ``cut``."""
    return end_ts if cut is None else min(end_ts, cut)


class Store:
    """The records of one account (filled by ``data.Dataset``) and the look-ups over them."""

    seed: int
    n_campaigns: int
    n_zones: int
    days: int
    events_per_campaign_hour: int
    start_ts: int
    end_ts: int
    zone_values: list[str]
    _salt: int
    # Entities (``entities.py``): the dicts served, and per-index tables.
    workspaces: list[dict[str, Any]]
    traffic_sources: list[dict[str, Any]]
    affiliate_networks: list[dict[str, Any]]
    offers: list[dict[str, Any]]
    offer_an: list[int]
    offer_payout: list[int]
    offer_country: list[int]
    landers: list[dict[str, Any]]
    flows: list[dict[str, Any]]
    flow_offers: list[list[int]]
    flow_landers: list[list[int]]
    campaigns: list[dict[str, Any]]
    camp_ts: list[int]
    camp_flow: list[int]
    camp_ws: list[int]
    camp_country: list[int]
    camp_cost: list[tuple[str, int]]
    camp_params: list[tuple[int, float, float]]
    entity_lists: dict[str, list[dict[str, Any]]]
    archived: dict[str, list[bool]]
    entity_index: dict[str, dict[str, int]]
    entity_workspace: dict[str, list[int]]
    # Event log (``entities.py``), oldest first, and its users.
    event_log: list[dict[str, Any]]
    users: list[dict[str, str]]
    # Traffic (``traffic.py``): one list per column, indexed by event (sorted by visit time) or by
    # conversion record (grouped by event); ``ev_uid`` is an event's stable identity.
    ev_ts: list[int]
    ev_c: list[int]
    ev_o: list[int]
    ev_l: list[int]
    ev_country: list[int]
    ev_os: list[int]
    ev_br: list[int]
    ev_cv1: list[int]
    ev_cv2: list[int]
    ev_cv3: list[int]
    ev_visits: list[int]
    ev_uv: list[int]
    ev_clicks: list[int]
    ev_conv: list[int]
    ev_errors: list[int]
    ev_impr: list[int]
    ev_cost: list[int]
    ev_rev: list[int]
    ev_uid: list[int]
    cv_event: list[int]
    cv_click: list[int]
    cv_type: list[int]
    cv_post: list[int]
    cv_rev: list[int]
    cv_post_order: list[int]
    cv_post_sorted: list[int]
    # Restatements (``restating.py``): ``None`` when off.
    restatements: Restatements | None = None

    def __init__(self) -> None:
        """Empty caches, locks and listeners (the records are set by the generators)."""
        self._lock = threading.Lock()
        self._currency_cache: dict[tuple[str, str, int], list[int]] = {}
        self._campaign_events: list[list[int]] | None = None
        self._campaign_event_ts: list[list[int]] | None = None
        self._listeners: list[weakref.WeakMethod[Callable[[], Any]] | Callable[[], Any]] = []
        self._late_lock = threading.Lock()
        self._late_calls = 0
        self._uid_index: list[int] | None = None
        self._now_ms: int | None = None

    # ------------------------------------------------------------------ the clock

    @property
    def now(self) -> datetime | None:
        """The sandbox clock (UTC), or ``None``: the real clock."""
        if self._now_ms is None:
            return None
        return datetime.fromtimestamp(self._now_ms // 1000, UTC).replace(
            microsecond=self._now_ms % 1000 * 1000
        )

    def set_now(self, value: datetime | date | str | float | None) -> None:
        """Set the sandbox clock: an instant (datetime, naive = UTC; ISO-8601 text; epoch ms) or
        ``None`` (the real clock). What happens after it is invisible (see the README); report
        caches are dropped when it moves.
        """  # noqa: D205
        ms = None if value is None else instant_ms(value, "now")
        if ms != self._now_ms:
            self._now_ms = ms
            self._tell_listeners()

    def clock_ms(self) -> int:
        """The clock's instant in epoch milliseconds (the real clock when none is set)."""
        return int(time.time() * 1000) if self._now_ms is None else self._now_ms

    def visible_before(self) -> int | None:
        """Exclusive epoch-second bound of what has happened: the clock's second + 1.

        ``None`` (everything generated is visible, as without a clock) when no clock is set and
        there are no restatements; with restatements and no clock, the real clock to the minute.
        """
        if self._now_ms is not None:
            return self._now_ms // 1000 + 1
        if self.restatements is None:
            return None
        return int(time.time()) // 60 * 60

    def uid_index(self) -> list[int]:
        """Event index of each event identity (``ev_uid``), cached until the data changes."""
        found = self._uid_index
        if found is None:
            found = [0] * len(self.ev_uid)
            for i, uid in enumerate(self.ev_uid):
                found[uid] = i
            self._uid_index = found
        return found

    # ------------------------------------------------------------------ entities

    def entities(self, kind: str, include_deleted: bool = True) -> list[dict[str, Any]]:
        """Return deep copies of the entities of ``kind`` (``campaign``, ``traffic-source``...)."""
        items = self.entity_lists[kind]
        return [copy.deepcopy(e) for e in items if include_deleted or not e.get("deleted", False)]

    def entity(self, kind: str, entity_id: str) -> dict[str, Any] | None:
        """Return the entity of ``kind`` with id ``entity_id`` (a deep copy), or ``None``."""
        idx = self.entity_index[kind].get(entity_id)
        return None if idx is None else copy.deepcopy(self.entity_lists[kind][idx])

    def raw_entities(self, kind: str) -> list[dict[str, Any]]:
        """Return the stored entity dicts of ``kind`` (not copied: do not mutate)."""
        return self.entity_lists[kind]

    # ------------------------------------------------------------------ traffic look-ups

    @property
    def n_events(self) -> int:
        """Number of traffic events."""
        return len(self.ev_ts)

    @property
    def n_conversions(self) -> int:
        """Number of individual conversion records."""
        return len(self.cv_event)

    def event_range(
        self, start_ts: int, end_ts: int, cut: int | Literal["clock"] | None = "clock"
    ) -> tuple[int, int]:
        """Half-open range of the visible events whose visit time is in ``[start_ts, end_ts)``.

        ``cut``: exclusive bound of what is visible (default: :meth:`visible_before`).
        """
        end_ts = _clip(end_ts, self.visible_before() if cut == "clock" else cut)
        return bisect.bisect_left(self.ev_ts, start_ts), bisect.bisect_left(self.ev_ts, end_ts)

    def visible_conversions_of_events(self, lo: int, hi: int, cut: int | None) -> Sequence[int]:
        """Conversion records of events ``lo..hi-1`` whose postback is before ``cut``."""
        rlo, rhi = self.conversion_range_by_event(lo, hi)
        if cut is None:
            return range(rlo, rhi)
        post = self.cv_post
        return [r for r in range(rlo, rhi) if post[r] < cut]

    def conversion_range_by_event(self, lo: int, hi: int) -> tuple[int, int]:
        """Half-open range of conversion records belonging to events ``lo..hi-1``."""
        return bisect.bisect_left(self.cv_event, lo), bisect.bisect_left(self.cv_event, hi)

    def conversions_by_postback(
        self, start_ts: int, end_ts: int, cut: int | Literal["clock"] | None = "clock"
    ) -> list[int]:
        """Visible conversion records with postback in ``[start_ts, end_ts)``, by (time, index)."""
        end_ts = _clip(end_ts, self.visible_before() if cut == "clock" else cut)
        lo = bisect.bisect_left(self.cv_post_sorted, start_ts)
        hi = bisect.bisect_left(self.cv_post_sorted, end_ts)
        return self.cv_post_order[lo:hi]

    def cost_column(self, currency: str, cut: int | Literal["clock"] | None = "clock") -> list[int]:
        """Per-event cost in ``currency`` cents (converted per event, so sums stay consistent),
        with the restatements' cost changes landed before ``cut`` (default: the clock's).
        """  # noqa: D205
        return self._converted("cost", currency, self.visible_before() if cut == "clock" else cut)

    def conversion_revenue_column(self, currency: str) -> list[int]:
        """Per-conversion revenue in ``currency`` cents."""
        return self._converted("rev", currency, None)

    def _converted(self, what: str, currency: str, cut: int | None) -> list[int]:
        """A cents column (costs: as of ``cut``) in ``currency``, cached."""
        plan = self.restatements
        landed = 0 if plan is None or what == "rev" else plan.landed(cut)
        if currency == "USD" and not landed:
            return self.ev_cost if what == "cost" else self.cv_rev
        key = (what, currency, landed)
        col = self._currency_cache.get(key)
        if col is None:
            if what == "rev":
                col = [convert_cents(v, currency) for v in self.cv_rev]
            else:
                assert plan is not None or not landed
                usd = (
                    self.ev_cost
                    if plan is None
                    else plan.costs(self.ev_cost, self.uid_index(), landed)
                )
                col = usd if currency == "USD" else [convert_cents(v, currency) for v in usd]
            with self._lock:
                if len(self._currency_cache) >= 16:
                    self._currency_cache.clear()
                self._currency_cache[key] = col
        return col

    # ------------------------------------------------------------------ individual visits

    def visit_id(self, event: int, j: int) -> str:
        """Voluum click id of visit ``j`` of ``event`` (unique; conversions refer to it)."""
        x = mix64(((self.ev_uid[event] << 12) | j) ^ self._salt)
        return "c" + b32(x, 13) + b32(mix64(x), 9)

    def visit_details(self, event: int, j: int = 0) -> dict[str, Any]:
        """Geo/device/network fields of visit ``j`` of ``event`` (deterministic)."""
        uid = self.ev_uid[event]
        h = mix64(uid ^ self._salt ^ 0x5A5A)
        code, cname, places = COUNTRIES[self.ev_country[event]]
        region, city = places[h % len(places)]
        os_name, os_versions, device, models, _ = OPERATING_SYSTEMS[self.ev_os[event]]
        brand, model = models[(h >> 8) % len(models)]
        br_name, br_versions = BROWSERS[self.ev_br[event]]
        conn, conn_name, isp, carrier = CONNECTIONS[(h >> 16) % len(CONNECTIONS)]
        ip_bits = mix64(((uid << 12) | j) ^ self._salt ^ 0xA5A5)
        first = (23, 31, 46, 78, 89, 102, 151, 185, 203)[ip_bits % 9]
        return {
            "clickId": self.visit_id(event, j),
            "externalId": f"ts-{mix64(((uid << 12) | j) ^ 0x77) & 0xFFFFFFFFFF:010x}",
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

    # ------------------------------------------------------------------ changes (late data)

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
            self._uid_index = None
        self._tell_listeners()

    def _tell_listeners(self) -> None:
        """Call every change listener (report caches)."""
        for ref in list(self._listeners):
            if isinstance(ref, weakref.WeakMethod):
                method = ref()
                if method is not None:
                    method()
            else:
                ref()
