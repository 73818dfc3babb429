"""Individual visits of the dataset: click ids, details, attribution, latest visits.

Geo/device/network details, attribution to the entities, and the newest visits of a campaign
(served by the live endpoints); all derive from an event's stable identity (``ev_uid``) and the
dataset's salt.
"""

from __future__ import annotations

import bisect
import threading
from typing import Any

from .catalog import BROWSERS, CONNECTIONS, COUNTRIES, CV2_VALUES, CV3_VALUES, OPERATING_SYSTEMS
from .formats import b32, mix64


class VisitDetails:
    """Part of :class:`~voluum_sandbox.data.Dataset`: per-visit fields and look-ups."""

    _salt: int
    _lock: threading.Lock
    _campaign_events: list[list[int]] | None
    _campaign_event_ts: list[list[int]] | None
    n_campaigns: int
    zone_values: list[str]
    campaigns: list[dict[str, Any]]
    offers: list[dict[str, Any]]
    landers: list[dict[str, Any]]
    flows: list[dict[str, Any]]
    traffic_sources: list[dict[str, Any]]
    affiliate_networks: list[dict[str, Any]]
    camp_ts: list[int]
    camp_flow: list[int]
    offer_an: list[int]
    ev_uid: list[int]
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
    ev_clicks: list[int]

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
