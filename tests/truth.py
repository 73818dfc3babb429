"""What a sync should write, from the sandbox's truth, and the checks against it.

The expected values come from `Dataset.truth_rows` / `truth_totals` / `conversions_between`
and the dataset's entities: never from another run of the tap.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from voluum_sandbox import Dataset

# The range of `tests.conftest.config_for`: local days 2026-03-05 .. 2026-03-11 in New York.
TZ = "America/New_York"
START = datetime(2026, 3, 5)
END = datetime(2026, 3, 12)

COUNTS = (
    "visits",
    "uniqueVisits",
    "clicks",
    "conversions",
    "errors",
    "impressions",
    *(f"customConversions{n}" for n in range(1, 6)),
)
AMOUNTS = ("revenue", "cost", *(f"customRevenue{n}" for n in range(1, 6)))
# The entity streams and the sandbox's kind of each.
ENTITY_STREAMS = {
    "campaigns": "campaign",
    "offers": "offer",
    "landers": "lander",
    "flows": "flow",
    "traffic_sources": "traffic-source",
    "affiliate_networks": "affiliate-network",
}
# A custom report the full-sync tests add to the built-in ones.
CUSTOM_COUNTRY = {"name": "campaign_country", "group_by": ["campaign", "country"]}
# The short range of the full-sync tests on small datasets: local days 2026-03-02 .. 03-04.
SHORT_START = datetime(2026, 3, 2)
SHORT_END = datetime(2026, 3, 5)

ENTITY_KEY = {
    "campaign": "campaignId",
    "offer": "offerId",
    "lander": "landerId",
    "flow": "flowId",
    "traffic-source": "trafficSourceId",
    "affiliate-network": "affiliateNetworkId",
}
DAILY_REPORTS = {
    "campaign_report": "campaign",
    "offer_report": "offer",
    "lander_report": "lander",
    "flow_report": "flow",
    "traffic_source_report": "traffic-source",
    "affiliate_network_report": "affiliate-network",
}
"""The built-in daily report streams and the dimension each groups by."""


def cents(value: object) -> int:
    """A JSON amount as whole cents (it must be one)."""
    amount = Decimal(str(value or 0)) * 100
    assert amount == amount.to_integral_value(), f"{value} is not a whole number of cents"
    return int(amount)


def assert_rows_match(
    records: Iterable[dict],
    truth: dict[tuple, dict],
    key_of: Callable[[dict], tuple],
    columns: Iterable[str] | None = None,
) -> None:
    """Same keys as the truth, and every count and amount (in `columns`) equal to it."""
    records = list(records)
    got = {key_of(r): r for r in records}
    assert len(got) == len(records), "two records share a key"
    missing, extra = truth.keys() - got.keys(), got.keys() - truth.keys()
    assert not missing and not extra, f"missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}"
    wanted = set(COUNTS + AMOUNTS) if columns is None else set(columns)
    for key, expected in truth.items():
        record = got[key]
        for metric in COUNTS:
            if metric in wanted:
                assert record[metric] == expected[metric], (key, metric)
        for amount in AMOUNTS:
            if amount in wanted:
                assert cents(record[amount]) == expected[f"{amount}_cents"], (key, amount)


def daily_truth(
    dataset: Dataset,
    dimension: str,
    start: datetime = START,
    end: datetime = END,
    tz: str = TZ,
    **options: Any,
) -> dict[tuple, dict]:
    """Rows of a daily report grouped by one entity, keyed (entity id, day); archived kept."""
    return dataset.truth_rows([dimension, "day"], start, end, tz, include="ALL", **options)


def assert_daily_report_matches(
    records: Iterable[dict], dataset: Dataset, dimension: str, **options: Any
) -> None:
    """A built-in daily report (`campaign_report`, ...) equals the truth row by row."""
    key = ENTITY_KEY[dimension]
    assert_rows_match(
        records, daily_truth(dataset, dimension, **options), lambda r: (r[key], r["day"])
    )


def assert_conversions_match(
    records: Iterable[dict],
    dataset: Dataset,
    start: datetime = START,
    end: datetime = END,
    tz: str = TZ,
) -> None:
    """Every conversion with its postback in the range, once, with its revenue."""
    expected = sorted(
        (c["clickId"], c["conversionType"], c["revenue_cents"], c["campaignId"])
        for c in dataset.conversions_between(start, end, tz)
    )
    got = sorted(
        (r["clickId"], r["conversionType"], cents(r["revenue"]), r["campaignId"]) for r in records
    )
    assert got == expected


def assert_entities_match(records: Iterable[dict], dataset: Dataset, kind: str) -> None:
    """Every entity of `kind` (archived included) once, with its name."""
    expected = sorted((e["id"], e["name"]) for e in dataset.entities(kind))
    assert sorted((r["id"], r["name"]) for r in records) == expected
