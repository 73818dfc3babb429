"""Report streams against the sandbox's truth: DST, paging, custom reports, state."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_voluum.errors import VoluumConfigError
from tap_voluum.tap import TapVoluum
from tests.conftest import config_for
from tests.helpers import SyncResult, bookmarks_of, run_tap, total
from tests.truth import (
    DAILY_REPORTS,
    ENTITY_KEY,
    assert_daily_report_matches,
    assert_rows_match,
)

if TYPE_CHECKING:
    from voluum_sandbox import Dataset, SandboxServer

TZ = "America/New_York"
START = datetime(2026, 3, 5)
END = datetime(2026, 3, 12)
BUILT_IN = DAILY_REPORTS
KEY = {
    **ENTITY_KEY,
    "country": "countryCode",
    "os": "os",
    "custom-variable-1": "customVariable1",
}


@pytest.fixture(scope="module")
def full_sync(sandbox: SandboxServer) -> SyncResult:
    sandbox.clear_requests()
    return run_tap(config_for(sandbox), {*BUILT_IN, "campaign_hourly_report"})


@pytest.mark.parametrize("stream", sorted(BUILT_IN))
def test_totals_across_dst_equal_the_truth(
    full_sync: SyncResult, dataset: Dataset, stream: str
) -> None:
    truth = dataset.truth_totals(START, END, TZ)
    records = full_sync.records[stream]
    assert sum(r["visits"] for r in records) == truth["visits"]
    assert sum(r["clicks"] for r in records) == truth["clicks"]
    assert sum(r["conversions"] for r in records) == truth["conversions"]
    assert total(records, "revenue") * 100 == truth["revenue_cents"]
    assert total(records, "cost") * 100 == truth["cost_cents"]


@pytest.mark.parametrize("stream", sorted(BUILT_IN))
def test_every_row_equals_the_truth(full_sync: SyncResult, dataset: Dataset, stream: str) -> None:
    dimension = BUILT_IN[stream]
    truth = dataset.truth_rows([dimension, "day"], START, END, TZ, include="ALL")
    assert_rows_match(full_sync.records[stream], truth, lambda r: (r[KEY[dimension]], r["day"]))


def test_day_buckets_carry_the_local_offset_across_dst(full_sync: SyncResult) -> None:
    buckets = {r["day"]: r["bucketStart"] for r in full_sync.records["campaign_report"]}
    assert buckets["2026-03-07"] == "2026-03-07T00:00:00-05:00"
    assert buckets["2026-03-08"] == "2026-03-08T00:00:00-05:00"
    assert buckets["2026-03-09"] == "2026-03-09T00:00:00-04:00"
    assert {r["timeZone"] for r in full_sync.records["campaign_report"]} == {TZ}


def test_hourly_report_equals_the_truth_hour_by_hour(
    full_sync: SyncResult, dataset: Dataset
) -> None:
    records = full_sync.records["campaign_hourly_report"]
    day = START
    expected: dict[tuple, dict] = {}
    while day < END:
        for (campaign, hour), row in dataset.truth_rows(
            ["campaign", "hour"], day, day + timedelta(days=1), TZ, include="ALL"
        ).items():
            expected[(campaign, day.date().isoformat(), hour)] = row
        day += timedelta(days=1)
    assert_rows_match(records, expected, lambda r: (r["campaignId"], r["day"], r["hour"]))
    dst_day = {r["hour"]: r["bucketStart"] for r in records if r["day"] == "2026-03-08"}
    assert 2 not in dst_day, "02:00 does not exist on 2026-03-08 in New York"
    assert dst_day[1] == "2026-03-08T01:00:00-05:00"
    assert dst_day[3] == "2026-03-08T03:00:00-04:00"


def test_primary_key_is_bucket_plus_dimension(full_sync: SyncResult) -> None:
    keys = full_sync.schemas["campaign_report"]["key_properties"]
    assert keys == ["account", "bucketStart", "campaignId"]
    assert full_sync.schemas["offer_report"]["key_properties"] == [
        "account",
        "bucketStart",
        "offerId",
    ]
    for stream in BUILT_IN:
        assert len(full_sync.keyed(stream)) == len(full_sync.records[stream])


def test_requests_follow_voluums_rules(full_sync: SyncResult, sandbox: SandboxServer) -> None:
    reports = [r for r in sandbox.requests if r["path"] == "/report"]
    assert reports
    # 429s are the rate limit's business (tests/test_rate_limit.py); none may be a 400.
    assert [r for r in reports if r["status"] not in (200, 429)] == []
    for request in reports:
        query = request["query"]
        assert query["tz"] == [TZ]
        assert query["from"][0].endswith(":00:00") and query["to"][0].endswith(":00:00")
        assert query["include"] == ["ALL"]
        assert query["groupBy"][-1] in ("day", "hour")
        if query["groupBy"] == ["day"]:  # the restatement check: every day's figures
            assert "sort" not in query and "columns" not in query
            continue
        assert query["direction"] == ["ASC"]
        assert ":" not in query["sort"][0]


def test_metrics_are_typed(full_sync: SyncResult) -> None:
    properties = full_sync.schemas["campaign_report"]["schema"]["properties"]
    assert "integer" in properties["visits"]["type"]
    assert "integer" in properties["customConversions20"]["type"]
    assert "number" in properties["revenue"]["type"]
    assert "number" in properties["customRevenue1"]["type"]
    assert properties["bucketStart"]["format"] == "date-time"
    record = full_sync.records["campaign_report"][0]
    assert isinstance(record["visits"], int)


def test_deselected_columns_are_neither_requested_nor_written(
    sandbox: SandboxServer, full_sync: SyncResult, dataset: Dataset
) -> None:
    sandbox.clear_requests()
    result = run_tap(config_for(sandbox), {"offer_report"}, deselect=("profit",))
    assert result.records["offer_report"]
    assert all("profit" not in r and "visits" in r for r in result.records["offer_report"])
    columns = {c for r in sandbox.requests if r["path"] == "/report" for c in r["query"]["columns"]}
    assert "profit" not in columns
    assert {"visits", "offerId", "revenue"} <= columns
    assert_daily_report_matches(result.records["offer_report"], dataset, "offer")
    kept = {
        k: {f: v for f, v in r.items() if f != "profit"}
        for k, r in full_sync.keyed("offer_report").items()
    }
    assert result.keyed("offer_report") == kept


@pytest.mark.parametrize(
    ("page_size", "window_days", "exact"),
    [
        (5, 3, False),  # 36 rows a window: a short last page
        (4, 1, True),  # 12 rows a window: the last page is full, nothing after it
    ],
)
def test_small_pages_give_every_row(
    sandbox: SandboxServer, dataset: Dataset, page_size: int, window_days: int, exact: bool
) -> None:
    windows = [
        (START + timedelta(days=d), min(START + timedelta(days=d + window_days), END))
        for d in range(0, (END - START).days, window_days)
    ]
    counts = [
        len(dataset.truth_rows(["campaign", "day"], a, b, TZ, include="ALL")) for a, b in windows
    ]
    assert all(n > page_size for n in counts), "every window takes several pages"
    # The premise: whether the row count of a window is an exact multiple of the page size.
    assert any(n % page_size == 0 for n in counts) == exact, counts
    sandbox.clear_requests()
    config = config_for(sandbox, page_size=page_size, report_window_days=window_days)
    paged = run_tap(config, {"campaign_report"})
    assert_daily_report_matches(paged.records["campaign_report"], dataset, "campaign")
    reports = [r for r in sandbox.requests if r["path"] == "/report"]
    assert {int(r["query"]["offset"][0]) for r in reports} >= {0, page_size, 2 * page_size}
    assert all(r["query"]["limit"] == [str(page_size)] for r in reports)


def test_custom_reports_equal_the_truth(sandbox: SandboxServer, dataset: Dataset) -> None:
    custom = [
        {"name": "campaign_country", "group_by": ["campaign", "country"]},
        {
            "name": "offer_country_os",
            "group_by": ["offer", "country", "os"],
            "columns": [
                "visits",
                "clicks",
                "conversions",
                "revenue",
                "cost",
                "uniqueVisits",
                "customConversions1",
                "customRevenue2",
            ],
        },
        {
            "name": "zones_hourly",
            "group_by": ["traffic-source", "custom-variable-1"],
            "granularity": "hour",
        },
    ]
    config = config_for(sandbox, custom_reports=custom, end_date="2026-03-09T00:00:00Z")
    end = datetime(2026, 3, 9)
    result = run_tap(config, {c["name"] for c in custom})

    truth = dataset.truth_rows(["campaign", "country", "day"], START, end, TZ, include="ALL")
    assert_rows_match(
        result.records["campaign_country"],
        truth,
        lambda r: (r["campaignId"], r["countryCode"], r["day"]),
    )
    assert result.schemas["offer_country_os"]["key_properties"] == [
        "account",
        "bucketStart",
        "offerId",
        "countryCode",
        "os",
    ]
    expected: dict[tuple, dict] = {}
    day = START
    while day < end:
        rows = dataset.truth_rows(
            ["offer", "country", "os"], day, day + timedelta(days=1), TZ, include="ALL"
        )
        expected.update({(*k, day.date().isoformat()): v for k, v in rows.items()})
        day += timedelta(days=1)
    assert_rows_match(
        result.records["offer_country_os"],
        expected,
        lambda r: (r["offerId"], r["countryCode"], r["os"], r["day"]),
        columns=custom[1]["columns"],
    )
    assert "profit" not in result.schemas["offer_country_os"]["schema"]["properties"]
    zones = result.records["zones_hourly"]
    assert sum(r["visits"] for r in zones) == dataset.truth_totals(START, end, TZ)["visits"]
    assert len(result.keyed("zones_hourly")) == len(zones)
    hourly: dict[tuple, dict] = {}
    day = START
    while day < end:
        rows = dataset.truth_rows(
            ["traffic-source", "custom-variable-1", "hour"],
            day,
            day + timedelta(days=1),
            TZ,
            include="ALL",
        )
        hourly.update({(*k, day.date().isoformat()): v for k, v in rows.items()})
        day += timedelta(days=1)
    assert_rows_match(
        zones,
        hourly,
        lambda r: (r["trafficSourceId"], r["customVariable1"], r["hour"], r["day"]),
    )


# The settings schema bounds group_by (1 to 3 items): the SDK names the setting.
GROUP_BY_BOUNDS = r"\['custom_reports'\]\[0\]\['group_by'\]"


@pytest.mark.parametrize(
    ("custom", "message"),
    [
        ([{"name": "x", "group_by": ["campaign", "planet"]}], "unknown dimension 'planet'"),
        ([{"name": "x", "group_by": ["campaign", "offer", "os", "browser"]}], GROUP_BY_BOUNDS),
        ([{"name": "x", "group_by": ["os"]}, {"name": "x", "group_by": ["browser"]}], "used twice"),
        ([{"name": "campaign_report", "group_by": ["os"]}], "used twice"),
        (
            [{"name": "x", "group_by": ["os", "browser", "country"], "granularity": "hour"}],
            "at most 2",
        ),
        ([{"name": "x", "group_by": []}], GROUP_BY_BOUNDS),
    ],
)
def test_bad_custom_reports_are_refused_before_any_request(
    fresh_sandbox: SandboxServer, custom: list, message: str
) -> None:
    with pytest.raises((VoluumConfigError, ConfigValidationError)) as raised:
        TapVoluum(config=config_for(fresh_sandbox, custom_reports=custom))
    said = "; ".join(getattr(raised.value, "errors", None) or [str(raised.value)])
    assert re.search(message, said), said
    assert fresh_sandbox.requests == []


def first_report_from(server: SandboxServer) -> str:
    return min(r["query"]["from"][0] for r in server.requests if r["path"] == "/report")


def test_second_sync_rereads_only_the_lookback(sandbox: SandboxServer, dataset: Dataset) -> None:
    first = run_tap(config_for(sandbox, end_date="2026-03-09T00:00:00Z"), {"campaign_report"})
    bookmark = bookmarks_of(first.final_state)["campaign_report"]["replication_key_value"]
    assert bookmark == "2026-03-08T00:00:00-05:00"
    sandbox.clear_requests()
    second = run_tap(config_for(sandbox), {"campaign_report"}, state=first.final_state)
    # The second sync alone re-reads the lookback (bookmark day minus 2 days, for late
    # conversions): its own rows are the truth from 2026-03-06 on, no fewer.
    lookback = datetime(2026, 3, 6)
    assert_daily_report_matches(
        second.records["campaign_report"], dataset, "campaign", start=lookback
    )
    assert first_report_from(sandbox) == "2026-03-06T00:00:00"
    union = {**first.keyed("campaign_report"), **second.keyed("campaign_report")}
    truth = dataset.truth_rows(["campaign", "day"], START, END, TZ, include="ALL")
    assert_rows_match(list(union.values()), truth, lambda r: (r["campaignId"], r["day"]))


def test_lookback_never_goes_before_start_date(sandbox: SandboxServer) -> None:
    state = {
        "bookmarks": {
            "campaign_report": {
                "replication_key": "bucketStart",
                "replication_key_value": "2026-03-06T00:00:00-05:00",
            }
        }
    }
    sandbox.clear_requests()
    run_tap(config_for(sandbox, lookback_days=10), {"campaign_report"}, state=state)
    assert first_report_from(sandbox) == "2026-03-05T00:00:00"


@pytest.mark.parametrize("window_days", [1, 3])
def test_resume_from_any_point_loses_nothing(
    sandbox: SandboxServer, dataset: Dataset, window_days: int
) -> None:
    """Cut the output anywhere (a kill), resume from the last STATE before the cut."""
    config = config_for(sandbox, lookback_days=0, report_window_days=window_days, page_size=7)
    full = run_tap(config, {"campaign_report"})
    truth = dataset.truth_rows(["campaign", "day"], START, END, TZ, include="ALL")
    assert sum(m["type"] == "STATE" for m in full.messages) >= 3
    for cut in range(1, len(full.messages), 17):
        written = SyncResult(full.messages[:cut])
        resumed = run_tap(config, {"campaign_report"}, state=written.final_state or None)
        union = dict(written.keyed("campaign_report")) if written.records else {}
        union.update(resumed.keyed("campaign_report"))
        assert_rows_match(list(union.values()), truth, lambda r: (r["campaignId"], r["day"]))


def test_column_info_types_custom_columns(fresh_sandbox: SandboxServer) -> None:
    custom = [
        {
            "name": "offers_plus",
            "group_by": ["offer"],
            "columns": ["visits", "payout", "deleted", "offerUrl"],
        }
    ]
    result = run_tap(config_for(fresh_sandbox, custom_reports=custom), {"offers_plus"})
    properties = result.schemas["offers_plus"]["schema"]["properties"]
    assert properties["payout"]["type"] == ["number", "null"]
    assert properties["deleted"]["type"] == ["boolean", "null"]
    assert properties["offerUrl"]["type"] == ["string", "null"]
    assert any(r["path"] == "/column/info" for r in fresh_sandbox.requests)
    assert all(isinstance(r["deleted"], bool) for r in result.records["offers_plus"])


def test_without_column_info_the_built_in_types_serve(
    fresh_sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A 5xx is retried like any request: a refusal leaves the built-in types.
    fresh_sandbox.configure(dialects=["no_column_info"])
    custom = [{"name": "offers_plus", "group_by": ["offer"], "columns": ["visits", "deleted"]}]
    result = run_tap(
        config_for(fresh_sandbox, custom_reports=custom), {"offers_plus", "campaign_report"}
    )
    assert any("/column/info unavailable" in r.getMessage() for r in caplog.records)
    assert result.schemas["campaign_report"]["schema"]["properties"]["visits"]["type"] == [
        "integer",
        "null",
    ]
    assert result.records["campaign_report"]


def test_account_columns_join_the_built_in_reports() -> None:
    from tap_voluum.streams.dimensions import account_columns

    mappings = {
        "visits": "integer",
        "CostPerFTD": "monetary-decimal-4",
        "campaignUrl": "string",
        "payout": "monetary-decimal-4",
        "offerNotes": "string",
        "SignupRate": "percentage",
        # Time levels /column/info lists (day, hour) or may list: groupings, not columns.
        "day": "string",
        "hour": "integer",
        "Hour": "integer",
        "month": "integer",
        "week": "integer",
        "year": "integer",
        "dayOfWeek": "integer",
        "day-of-week": "integer",
        "day_of_week": "integer",
        "hourOfDay": "integer",
        "hour-of-day": "integer",
        "DepositsPerHour": "number",
    }
    assert account_columns(mappings) == ("CostPerFTD", "SignupRate", "DepositsPerHour")


def test_daily_reports_have_no_hour_column_even_when_column_info_lists_it(
    sandbox: SandboxServer,
) -> None:
    tap = TapVoluum(config=config_for(sandbox))  # the sandbox's /column/info lists day and hour
    for name in ("campaign_report", "offer_report"):
        properties = tap.streams[name].schema["properties"]
        assert "hour" not in properties and "month" not in properties
        assert properties["day"]["format"] == "date"
    hourly = tap.streams["campaign_hourly_report"].schema["properties"]
    assert hourly["hour"]["type"] == ["integer", "null"]
