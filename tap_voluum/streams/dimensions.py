"""Voluum's report dimensions and metric columns, and the JSON schema of each column."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tap_voluum.streams.fields import BOOLEAN, INTEGER, NUMBER, STRING

if TYPE_CHECKING:
    from collections.abc import Mapping

CUSTOM_SLOTS = 20
"""Custom conversion and revenue columns: `customConversions1..20`, `customRevenue1..20`."""


@dataclass(frozen=True)
class Dimension:
    """A Voluum dimension: its name in settings, the row fields it brings, its spellings.

    `spellings` are the `groupBy` values public clients use for it, the most likely first;
    the tap moves to the next one when Voluum refuses a spelling (`tap_voluum.readings`).
    """

    group_by: str
    key: str
    fields: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    spellings: tuple[str, ...] = ()

    @property
    def candidates(self) -> tuple[str, ...]:
        """The `groupBy` spellings to try, in order."""
        return self.spellings or (self.group_by,)


def _entity(group_by: str, prefix: str, *extra: str, aliases: tuple[str, ...] = ()) -> Dimension:
    fields = (f"{prefix}Id", f"{prefix}Name", *extra)
    names = (f"{prefix}Id", *aliases)
    return Dimension(group_by, f"{prefix}Id", fields, names, (group_by, *names))


_WORKSPACE = ("WorkspaceId", "WorkspaceName")
DIMENSIONS: tuple[Dimension, ...] = (
    _entity(
        "campaign",
        "campaign",
        "campaignCountry",
        "campaignWorkspaceId",
        "campaignWorkspaceName",
        "trafficSourceName",
        aliases=("campaign_id",),
    ),
    _entity("offer", "offer", "offerCountry", "offerWorkspaceId", "offerWorkspaceName"),
    _entity("lander", "lander", "landerCountry", "landerWorkspaceId", "landerWorkspaceName"),
    _entity("flow", "flow", "flowWorkspaceId", "flowWorkspaceName"),
    _entity("traffic-source", "trafficSource", aliases=("traffic_source_id",)),
    _entity("affiliate-network", "affiliateNetwork", aliases=("affiliate_network_id",)),
    Dimension(
        "country",
        "countryCode",
        ("countryCode", "countryName"),
        ("country-code", "countryCode"),
        # `country-code` is what most clients send; S5 calls `country` invalid on /report.
        ("country-code", "countryCode", "country"),
    ),
    Dimension("os", "os", ("os",)),
    Dimension("browser", "browser", ("browser",)),
    *(
        Dimension(
            f"custom-variable-{n}",
            f"customVariable{n}",
            (f"customVariable{n}",),
            (f"customVariable{n}",),
            (f"custom-variable-{n}", f"customVariable{n}"),
        )
        for n in range(1, 11)
    ),
)
DIMENSION_BY_NAME: dict[str, Dimension] = {
    name: dim for dim in DIMENSIONS for name in (dim.group_by, *dim.aliases)
}
GRANULARITIES = ("day", "hour")

INTEGER_METRICS = (
    "visits",
    "uniqueVisits",
    "clicks",
    "conversions",
    "errors",
    "impressions",
    "bids",
    "suspiciousVisits",
    "suspiciousClicks",
    *(f"customConversions{n}" for n in range(1, CUSTOM_SLOTS + 1)),
)
NUMBER_METRICS = (
    "revenue",
    "cost",
    "profit",
    "roi",
    "cpv",
    "ctr",
    "cr",
    "cv",
    "epv",
    "epc",
    "ap",
    "ictr",
    "advertiserCost",
    "ecpa",
    "ecpc",
    "ecpm",
    "rpm",
    "winRate",
    *(f"customRevenue{n}" for n in range(1, CUSTOM_SLOTS + 1)),
)
METRICS = INTEGER_METRICS + NUMBER_METRICS
CUSTOM_COLUMN = re.compile(r"^custom(Conversions|Revenue)\d+$")
_TEXT_COLUMN = re.compile(r"(Id|Name|Url|Notes|Country|Code|Type|Status|Tags)$")


_VOLUUM_TYPES = {"integer": INTEGER, "yesno": BOOLEAN, "string": STRING}
_ENTITY_ATTRIBUTES = frozenset(
    {
        "payout",
        "numberOfOffers",
        "bid",
        "cpa",
        "cpc",
        "cpm",
        "dailyBudget",
        "totalBudget",
        "totalSpend",
        "deleted",
    }
)


def voluum_type(kind: str) -> dict:
    """JSON schema for a `/column/info` type (`integer`, `monetary-decimal-4`, `yesno`, ...)."""
    if kind.startswith("string"):
        return STRING
    return _VOLUUM_TYPES.get(kind, NUMBER)


def account_columns(mappings: Mapping[str, str]) -> tuple[str, ...]:
    """Numeric columns the account defined itself (custom formulas such as `CostPerFTD`).

    `/column/info` also lists the time levels a report can be grouped by (`day`, `hour`,
    `month`, `day-of-week`, ...): they are groupings, filled only when grouped by, never
    columns, so they are left out whatever their spelling (case, `-`, `_` ignored).
    """
    known = set(METRICS) | {f for d in DIMENSIONS for f in d.fields} | _ENTITY_ATTRIBUTES
    entity = re.compile(r"^(campaign|offer|lander|flow|trafficSource|affiliateNetwork)[A-Z]")
    time_level = re.compile(
        r"^(date|day|hour|minute|week|month|quarter|year|dayofweek|dayofmonth|dayofyear"
        r"|hourofday|weekofyear|monthofyear)$"
    )
    return tuple(
        key
        for key, kind in mappings.items()
        if key not in known
        and not entity.match(key)
        and not time_level.match(re.sub(r"[-_ ]", "", key).lower())
        and voluum_type(kind) is not STRING
        and kind != "yesno"
    )


def column_type(column: str, mappings: Mapping[str, str] | None = None) -> dict:
    """JSON schema of a report column: `/column/info`'s type, else by name."""
    if mappings and column in mappings:
        return voluum_type(mappings[column])
    if column in INTEGER_METRICS:
        return INTEGER
    if column in NUMBER_METRICS:
        return NUMBER
    if _TEXT_COLUMN.search(column) or column in ("os", "browser"):
        return STRING
    return NUMBER  # account-defined formula columns (e.g. CostPerFTD) are numbers
