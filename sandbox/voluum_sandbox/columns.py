"""Columns of a report: metrics, their formulas, dimension fields and ``columnMappings``.

The integer metric vector of a row, Voluum's formulas for the derived metrics, the fields each
dimension contributes to a row, and the ``columnMappings`` list (``/report``, ``/column/info``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .catalog import CONVERSION_TYPES, DIMENSIONS

# --------------------------------------------------------------------------- metrics

# Layout of the integer metric vector of a row.
BASE_METRICS = ("visits", "uniqueVisits", "clicks", "errors", "impressions", "cost")
CONV_METRICS = (
    "conversions",
    "revenue",
    *(f"customConversions{n}" for n in range(1, 6)),
    *(f"customRevenue{n}" for n in range(1, 6)),
)
VECTOR = BASE_METRICS + CONV_METRICS
N_BASE = len(BASE_METRICS)
N_CONV = len(CONV_METRICS)
WIDTH = N_BASE + N_CONV

# key -> (label, type)
METRIC_COLUMNS: dict[str, tuple[str, str]] = {
    "visits": ("Visits", "integer"),
    "uniqueVisits": ("Unique visits", "integer"),
    "clicks": ("Clicks", "integer"),
    "conversions": ("Conversions", "integer"),
    "revenue": ("Revenue", "monetary-decimal-4"),
    "cost": ("Cost", "monetary-decimal-4"),
    "profit": ("Profit", "monetary-decimal-4"),
    "roi": ("ROI", "percentage"),
    "cpv": ("CPV", "monetary-decimal-4"),
    "ctr": ("CTR", "percentage"),
    "cr": ("CR", "percentage"),
    "cv": ("CV", "percentage"),
    "epv": ("EPV", "monetary-decimal-4"),
    "epc": ("EPC", "monetary-decimal-4"),
    "ap": ("AP", "monetary-decimal-4"),
    "errors": ("Errors", "integer"),
    "impressions": ("Impressions", "integer"),
    "ictr": ("ICTR", "percentage"),
    "ecpa": ("eCPA", "monetary-decimal-4"),
    "ecpc": ("eCPC", "monetary-decimal-4"),
    "ecpm": ("eCPM", "monetary-decimal-4"),
    "rpm": ("RPM", "monetary-decimal-4"),
    **{f"customConversions{t[0]}": (t[2], "integer") for t in CONVERSION_TYPES},
    **{f"customRevenue{t[0]}": (f"{t[2]} revenue", "monetary-decimal-4") for t in CONVERSION_TYPES},
}


def _div(nums: list[int], dens: list[int], scale: float) -> list[float]:
    """Element-wise ``num / den * scale`` rounded to 5 decimals; 0.0 where ``den`` is 0."""
    return [round(n / d * scale, 5) if d else 0.0 for n, d in zip(nums, dens, strict=True)]


def metric_columns(cols: Sequence[list[int]]) -> list[list[Any]]:
    """Metric output columns (in ``METRIC_COLUMNS`` order) from the 18 integer vector columns.

    Computed column-wise for speed; money comes in cents; derived metrics follow Voluum's
    formulas, rounded to 5 decimals and 0 when the denominator is 0.
    """
    visits, uv, clicks, errors, impr, cost, conv, rev = cols[:8]
    cc = cols[8:13]
    cr = cols[13:18]
    cost_f = [c / 100 for c in cost]
    rev_f = [r / 100 for r in rev]
    out: dict[str, list[Any]] = {
        "visits": visits,
        "uniqueVisits": uv,
        "clicks": clicks,
        "conversions": conv,
        "revenue": rev_f,
        "cost": cost_f,
        "profit": [(r - c) / 100 for r, c in zip(rev, cost, strict=True)],
        "roi": [round((r - c) / c * 100, 5) if c else 0.0 for r, c in zip(rev, cost, strict=True)],
        "cpv": _div(cost, visits, 0.01),
        "ctr": _div(clicks, visits, 100),
        "cr": _div(conv, clicks, 100),
        "cv": _div(conv, visits, 100),
        "epv": _div(rev, visits, 0.01),
        "epc": _div(rev, clicks, 0.01),
        "ap": _div(rev, conv, 0.01),
        "errors": errors,
        "impressions": impr,
        "ictr": _div(visits, impr, 100),
        "ecpa": _div(cost, conv, 0.01),
        "ecpc": _div(cost, clicks, 0.01),
        "ecpm": _div(cost, impr, 10),
        "rpm": _div(rev, impr, 10),
    }
    for n in range(5):
        out[f"customConversions{n + 1}"] = cc[n]
    for n in range(5):
        out[f"customRevenue{n + 1}"] = [v / 100 for v in cr[n]]
    return [out[k] for k in METRIC_COLUMNS]


METRIC_KEYS = tuple(METRIC_COLUMNS)


def metric_dict(m: Sequence[int]) -> dict[str, Any]:
    """Render one integer metric vector (money in cents) as Voluum metric fields."""
    return {k: col[0] for k, col in zip(METRIC_KEYS, metric_columns([[v] for v in m]), strict=True)}


# --------------------------------------------------------------------------- columns

DIM_FIELDS: dict[str, tuple[tuple[str, str, str, bool], ...]] = {
    # dim -> ((key, label, type, canGroupBy), ...); the first key is the group key.
    "campaign": (
        ("campaignId", "Campaign ID", "string", True),
        ("campaignName", "Campaign", "string", False),
        ("campaignNamePostfix", "Campaign name postfix", "string", False),
        ("campaignCountry", "Campaign country", "string", False),
        ("campaignUrl", "Campaign URL", "string", False),
        ("campaignCurrencyCode", "Campaign currency", "string", False),
        ("campaignWorkspaceId", "Campaign workspace ID", "string", False),
        ("campaignWorkspaceName", "Campaign workspace", "string", False),
        ("campaignTags", "Campaign tags", "string", False),
        ("costModel", "Cost model", "string", False),
        ("revenueModel", "Revenue model", "string", False),
    ),
    "offer": (
        ("offerId", "Offer ID", "string", True),
        ("offerName", "Offer", "string", False),
        ("offerCountry", "Offer country", "string", False),
        ("offerUrl", "Offer URL", "string", False),
        ("offerWorkspaceId", "Offer workspace ID", "string", False),
        ("offerWorkspaceName", "Offer workspace", "string", False),
        ("payout", "Payout", "monetary-decimal-4", False),
    ),
    "lander": (
        ("landerId", "Lander ID", "string", True),
        ("landerName", "Lander", "string", False),
        ("landerCountry", "Lander country", "string", False),
        ("landerUrl", "Lander URL", "string", False),
        ("landerWorkspaceId", "Lander workspace ID", "string", False),
        ("landerWorkspaceName", "Lander workspace", "string", False),
        ("numberOfOffers", "Number of offers", "integer", False),
    ),
    "flow": (
        ("flowId", "Flow ID", "string", True),
        ("flowName", "Flow", "string", False),
        ("flowWorkspaceId", "Flow workspace ID", "string", False),
        ("flowWorkspaceName", "Flow workspace", "string", False),
    ),
    "traffic-source": (
        ("trafficSourceId", "Traffic source ID", "string", True),
        ("trafficSourceName", "Traffic source", "string", False),
    ),
    "affiliate-network": (
        ("affiliateNetworkId", "Affiliate network ID", "string", True),
        ("affiliateNetworkName", "Affiliate network", "string", False),
    ),
    "country": (
        ("countryCode", "Country code", "string", True),
        ("countryName", "Country", "string", False),
    ),
    "os": (("os", "OS", "string", True),),
    "browser": (("browser", "Browser", "string", True),),
    **{
        f"custom-variable-{n}": ((f"customVariable{n}", f"Custom variable {n}", "string", True),)
        for n in range(1, 11)
    },
    "day": (("day", "Day", "string", True),),
    "hour": (("hour", "Hour of day", "integer", True),),
}


def column_mappings() -> list[dict[str, Any]]:
    """Build the ``columnMappings`` list: every dimension field and metric with its type."""
    cols: list[dict[str, Any]] = []
    seen: set[str] = set()
    for dim in DIMENSIONS:
        for key, label, typ, group in DIM_FIELDS[dim]:
            if key not in seen:
                seen.add(key)
                cols.append(
                    {
                        "key": key,
                        "label": label,
                        "type": typ,
                        "canGroupBy": group,
                        "canBeRestricted": True,
                    }
                )
    cols.append(
        {
            "key": "deleted",
            "label": "Archived",
            "type": "yesno",
            "canGroupBy": False,
            "canBeRestricted": False,
        }
    )
    for key, (label, typ) in METRIC_COLUMNS.items():
        cols.append(
            {"key": key, "label": label, "type": typ, "canGroupBy": False, "canBeRestricted": True}
        )
    return cols


COLUMN_MAPPINGS = column_mappings()
