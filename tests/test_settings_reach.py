"""Settings that change what Voluum computes reach it: each sync equals the truth for it.

`currency`, `workspace_ids` and `conversion_time_mode` are compared with the sandbox's
truth computed for that setting, and each test first checks that this truth differs from
the default one, so a setting the tap fails to send cannot pass.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tests.conftest import config_for
from tests.helpers import run_tap
from tests.truth import TZ, assert_daily_report_matches, assert_rows_match, daily_truth

if TYPE_CHECKING:
    from voluum_sandbox import Dataset, SandboxServer

# Three local days around the 2026-03-08 DST change in New York: small and quick.
START = datetime(2026, 3, 7)
END = datetime(2026, 3, 10)
SPAN = {"start": START, "end": END}


def config(sandbox: SandboxServer, **settings: object) -> dict:
    return config_for(
        sandbox,
        start_date="2026-03-07T00:00:00Z",
        end_date="2026-03-10T00:00:00Z",
        **settings,
    )


def test_currency_converts_every_amount_exactly(sandbox: SandboxServer, dataset: Dataset) -> None:
    eur = daily_truth(dataset, "campaign", **SPAN, currency="EUR")
    usd = daily_truth(dataset, "campaign", **SPAN)
    assert eur.keys() == usd.keys()
    assert any(eur[k]["cost_cents"] != usd[k]["cost_cents"] for k in eur), "EUR is not USD"
    assert any(eur[k]["revenue_cents"] != usd[k]["revenue_cents"] for k in eur)

    result = run_tap(config(sandbox, currency="EUR"), {"campaign_report", "offer_report"})
    # Every count, and every amount to the cent, as Voluum computes it in EUR.
    assert_daily_report_matches(
        result.records["campaign_report"], dataset, "campaign", **SPAN, currency="EUR"
    )
    assert_daily_report_matches(
        result.records["offer_report"], dataset, "offer", **SPAN, currency="EUR"
    )
    for stream in ("campaign_report", "offer_report"):
        assert {r["currency"] for r in result.records[stream]} == {"EUR"}


def test_workspace_ids_keep_that_workspaces_campaigns_only(
    sandbox: SandboxServer, dataset: Dataset
) -> None:
    workspace = dataset.workspaces[1]["id"]
    mine = {c["id"] for c in dataset.entities("campaign") if c["workspace"]["id"] == workspace}
    everything = daily_truth(dataset, "campaign", **SPAN)
    truth = daily_truth(dataset, "campaign", **SPAN, workspaces=[workspace])
    assert truth, "the workspace has traffic"
    assert {k[0] for k in truth} == {k[0] for k in everything} & mine
    assert {k[0] for k in everything} - mine, "other workspaces have traffic too"

    result = run_tap(
        config(sandbox, workspace_ids=[workspace]), {"campaign_report", "offer_report"}
    )
    records = result.records["campaign_report"]
    assert {r["campaignWorkspaceId"] for r in records} == {workspace}
    assert_rows_match(records, truth, lambda r: (r["campaignId"], r["day"]))
    # Offers are not in a workspace's campaigns only: their rows count that traffic alone.
    offers = daily_truth(dataset, "offer", **SPAN, workspaces=[workspace])
    assert offers != daily_truth(dataset, "offer", **SPAN)
    assert_rows_match(result.records["offer_report"], offers, lambda r: (r["offerId"], r["day"]))


def test_conversion_time_mode_counts_conversions_at_the_postback(
    sandbox: SandboxServer, dataset: Dataset
) -> None:
    by_postback = daily_truth(dataset, "campaign", **SPAN, conversion_time_mode="CONVERSION")
    by_visit = daily_truth(dataset, "campaign", **SPAN)
    assert any(
        by_postback[k]["conversions"] != by_visit.get(k, {}).get("conversions") for k in by_postback
    ), "the two modes differ on these days"

    result = run_tap(
        config(sandbox, conversion_time_mode="CONVERSION"),
        {"campaign_report", "campaign_hourly_report"},
    )
    assert_rows_match(
        result.records["campaign_report"], by_postback, lambda r: (r["campaignId"], r["day"])
    )
    hourly: dict[tuple, dict] = {}
    day = START
    while day < END:
        rows = dataset.truth_rows(
            ["campaign", "hour"],
            day,
            day + timedelta(days=1),
            TZ,
            "CONVERSION",
            include="ALL",
        )
        hourly.update({(c, day.date().isoformat(), h): v for (c, h), v in rows.items()})
        day += timedelta(days=1)
    assert_rows_match(
        result.records["campaign_hourly_report"],
        hourly,
        lambda r: (r["campaignId"], r["day"], r["hour"]),
    )
