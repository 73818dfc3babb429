"""Dimensions of the report engine: what each dimension's value is, per event and in a row.

Integer value tables per dimension (read from the dataset's event columns; day and hour through
a :class:`TzContext`), the row fields each value shows (entity names, countries, workspaces...),
sort ranks and ``filterN`` matches. The truth oracle does not use this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from .catalog import (
    BROWSERS,
    COUNTRIES,
    CUSTOM_VARIABLE_DIMS,
    CV2_VALUES,
    CV3_VALUES,
    ENTITY_DIMS,
    OPERATING_SYSTEMS,
)
from .columns import DIM_FIELDS
from .formats import EPOCH_ORDINAL
from .timezones import TzContext

if TYPE_CHECKING:
    from .data import Dataset


class Dimensions:
    """The dimensions of one dataset's reports (tables built once, row fields cached)."""

    def __init__(self, ds: Dataset) -> None:
        """Build the per-dimension tables: event columns, per-entity mappings, value labels."""
        self.ds = ds
        self._fields: dict[tuple[str, int], dict[str, Any]] = {}
        self._ranks: dict[str, list[int]] = {}
        self._direct: dict[str, list[int]] = {
            "campaign": ds.ev_c,
            "offer": ds.ev_o,
            "lander": ds.ev_l,
            "country": ds.ev_country,
            "os": ds.ev_os,
            "browser": ds.ev_br,
            "custom-variable-1": ds.ev_cv1,
            "custom-variable-2": ds.ev_cv2,
            "custom-variable-3": ds.ev_cv3,
        }
        self._derived: dict[str, tuple[list[int], list[int]]] = {
            "flow": (ds.camp_flow, ds.ev_c),
            "traffic-source": (ds.camp_ts, ds.ev_c),
            "affiliate-network": (ds.offer_an, ds.ev_o),
        }
        self._labels: dict[str, list[Any]] = {
            **{d: [e["id"] for e in ds.entity_lists[d]] for d in ENTITY_DIMS},
            "country": [c[0] for c in COUNTRIES],
            "os": [o[0] for o in OPERATING_SYSTEMS],
            "browser": [b[0] for b in BROWSERS],
            "custom-variable-1": ds.zone_values,
            "custom-variable-2": list(CV2_VALUES),
            "custom-variable-3": list(CV3_VALUES),
            **{d: [""] for d in CUSTOM_VARIABLE_DIMS[3:]},
        }

    def values(
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

    def label(self, dim: str, value: int) -> Any:
        """Identity value shown in rows for a dimension value (id, code, string, day or hour)."""
        if dim == "day":
            return date.fromordinal(EPOCH_ORDINAL + value).isoformat()
        if dim == "hour":
            return value
        return self._labels[dim][value]

    def cardinality(self, dim: str) -> int | None:
        """Return the number of values of a non-time dimension (``None`` for day/hour)."""
        return None if dim in ("day", "hour") else len(self._labels[dim])

    def fields(self, dim: str, value: int) -> dict[str, Any]:
        """Row fields of one dimension value (cached for entity-like dimensions)."""
        if dim == "day":
            return {"day": self.label("day", value)}
        if dim == "hour":
            return {"hour": value}
        key = (dim, value)
        found = self._fields.get(key)
        if found is None:
            found = self._build_fields(dim, value)
            self._fields[key] = found
        return found

    def _build_fields(self, dim: str, value: int) -> dict[str, Any]:  # noqa: PLR0911
        """Compute the row fields of a dimension value."""
        ds = self.ds
        ws = ds.workspaces
        if dim == "campaign":
            c = ds.campaigns[value]
            ts = ds.traffic_sources[ds.camp_ts[value]]
            w = ws[ds.camp_ws[value]]
            return {
                "campaignId": c["id"],
                "campaignName": c["name"],
                "campaignNamePostfix": c["namePostfix"],
                "campaignCountry": COUNTRIES[ds.camp_country[value]][1],
                "campaignUrl": c["url"],
                "campaignCurrencyCode": c["currencyCode"],
                "campaignWorkspaceId": w["id"],
                "campaignWorkspaceName": w["name"],
                "campaignTags": list(c["tags"]),
                "trafficSourceId": ts["id"],
                "trafficSourceName": ts["name"],
                "costModel": c["costModel"]["type"],
                "revenueModel": c["revenueModel"]["type"],
            }
        if dim == "offer":
            o = ds.offers[value]
            an = ds.affiliate_networks[ds.offer_an[value]]
            w = ws[ds.entity_workspace["offer"][value]]
            return {
                "offerId": o["id"],
                "offerName": o["name"],
                "offerCountry": COUNTRIES[ds.offer_country[value]][1],
                "offerUrl": o["url"],
                "offerWorkspaceId": w["id"],
                "offerWorkspaceName": w["name"],
                "payout": ds.offer_payout[value] / 100,
                "affiliateNetworkId": an["id"],
                "affiliateNetworkName": an["name"],
            }
        if dim == "lander":
            lnd = ds.landers[value]
            w = ws[ds.entity_workspace["lander"][value]]
            code = lnd["country"] if isinstance(lnd["country"], str) else lnd["country"]["code"]
            return {
                "landerId": lnd["id"],
                "landerName": lnd["name"],
                "landerCountry": next((c[1] for c in COUNTRIES if c[0] == code), code),
                "landerUrl": lnd["url"],
                "landerWorkspaceId": w["id"],
                "landerWorkspaceName": w["name"],
                "numberOfOffers": lnd["numberOfOffers"],
            }
        if dim == "flow":
            f = ds.flows[value]
            w = ws[ds.entity_workspace["flow"][value]]
            return {
                "flowId": f["id"],
                "flowName": f["name"],
                "flowWorkspaceId": w["id"],
                "flowWorkspaceName": w["name"],
            }
        if dim == "traffic-source":
            t = ds.traffic_sources[value]
            return {"trafficSourceId": t["id"], "trafficSourceName": t["name"]}
        if dim == "affiliate-network":
            a = ds.affiliate_networks[value]
            return {"affiliateNetworkId": a["id"], "affiliateNetworkName": a["name"]}
        if dim == "country":
            return {"countryCode": COUNTRIES[value][0], "countryName": COUNTRIES[value][1]}
        return {DIM_FIELDS[dim][0][0]: self.label(dim, value)}

    def field_names(self, dim: str) -> list[str]:
        """Names of the row fields a dimension contributes (as rendered by :meth:`fields`)."""
        sample = 0 if dim != "day" else self.ds.start_ts // 86400
        return list(self.fields(dim, sample))

    def rank(self, dim: str) -> list[int] | None:
        """Sort rank of each value of a dimension (entities by name, id); ``None`` = identity."""
        if dim in ("day", "hour"):
            return None
        found = self._ranks.get(dim)
        if found is None:
            n = self.cardinality(dim) or 1
            if dim in ENTITY_DIMS:
                items = self.ds.raw_entities(dim)
                order = sorted(range(n), key=lambda i: (items[i]["name"], items[i]["id"]))
            else:
                order = sorted(range(n), key=lambda i: str(self.label(dim, i)))
            found = [0] * n
            for pos, i in enumerate(order):
                found[i] = pos
            self._ranks[dim] = found
        return found

    def match(self, dim: str, value: str) -> set[int]:
        """Dimension values matching a ``filterNValue`` (id, code or name; day/hour by value)."""
        if dim == "day":
            try:
                return {datetime.fromisoformat(value[:10]).toordinal() - EPOCH_ORDINAL}
            except ValueError:
                return set()
        if dim == "hour":
            return {int(value)} if value.strip().isdigit() else set()
        n = self.cardinality(dim) or 1
        own = [f[0] for f in DIM_FIELDS[dim][:2] if f[0].endswith(("Id", "Name", "Code"))]
        own = own or [DIM_FIELDS[dim][0][0]]
        out = set()
        for i in range(n):
            f = self.fields(dim, i)
            if value in {str(f[k]) for k in own} or (
                dim == "country" and value.upper() == COUNTRIES[i][0]
            ):
                out.add(i)
        return out
