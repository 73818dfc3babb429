"""Rows of a report: the fields each dimension value shows, and the rendering of a page.

Fields are entity names, countries, workspaces...; pages are rendered as msgspec Structs.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from .catalog import COUNTRIES, ENTITY_DIMS
from .columns import DIM_FIELDS, METRIC_KEYS, metric_columns

if TYPE_CHECKING:
    from .data import Dataset


class ReportRows:
    """Part of :class:`~voluum_sandbox.reports.ReportEngine`: row fields and row rendering."""

    ds: Dataset
    _fields: dict[tuple[str, int], dict[str, Any]]
    _row_types: dict[tuple[str, ...], tuple[type[msgspec.Struct], list[tuple[int, str]]]]

    def fields(self, dim: str, value: int) -> dict[str, Any]:
        """Row fields of one dimension value (cached for entity-like dimensions)."""
        if dim == "day":
            return {"day": self.ds.dim_label("day", value)}
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
        return {DIM_FIELDS[dim][0][0]: ds.dim_label(dim, value)}

    def row_type(self, dims: tuple[str, ...]) -> tuple[type[msgspec.Struct], list[tuple[int, str]]]:
        """Struct type of the rows of a grouping, plus (dim position, field) per dimension field."""
        found = self._row_types.get(dims)
        if found is None:
            names: list[str] = []
            sources: list[tuple[int, str]] = []
            for pos, d in enumerate(dims):
                for key in self._field_names(d):
                    if key not in names:
                        names.append(key)
                        sources.append((pos, key))
            struct = msgspec.defstruct(
                "ReportRow_" + "_".join(d.replace("-", "_") for d in dims),
                [*names, "deleted", *METRIC_KEYS],
            )
            found = (struct, sources)
            self._row_types[dims] = found
        return found

    def _field_names(self, dim: str) -> list[str]:
        """Names of the row fields a dimension contributes (as rendered by :meth:`fields`)."""
        sample = 0 if dim != "day" else self.ds.start_ts // 86400
        return list(self.fields(dim, sample))

    def render_rows(
        self, dims: tuple[str, ...], keys: Sequence[tuple[int, ...]], columns: Sequence[list[int]]
    ) -> list[msgspec.Struct]:
        """Row objects (msgspec Structs, encoded as JSON objects) for a page of results."""
        struct, sources = self.row_type(dims)
        out: list[list[Any]] = []
        positions = [list(map(operator.itemgetter(pos), keys)) for pos in range(len(dims))]
        distinct = [set(p) for p in positions]
        for pos, name in sources:
            d = dims[pos]
            table = {v: self.fields(d, v)[name] for v in distinct[pos]}
            out.append(list(map(table.__getitem__, positions[pos])))
        deleted = [False] * len(keys)
        for pos, d in enumerate(dims):
            if d in ENTITY_DIMS:
                flags = self.ds.archived[d]
                deleted = [a or flags[v] for a, v in zip(deleted, positions[pos], strict=True)]
        out.append(deleted)
        out.extend(metric_columns(columns))
        return list(map(struct, *out))
