"""Bookmarks that know the settings they were made under (issue #20 §1).

A first sync, a second one from its state after a setting changed. A setting that shapes
rows (time zone, currency, conversion time mode, workspaces, a custom report's grouping or
columns) makes each affected stream say so in one WARNING naming the old and the new value
and read again from `start_date`; the union of both syncs, upserted on the key (second
wins), equals the sandbox's truth under the new setting for every key it produces. A
setting that does not shape rows (`page_size`) changes nothing, and a state from before
stamps is taken as made under today's settings.
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import config_for
from tests.helpers import SyncResult, bookmarks_of, run_tap
from tests.truth import assert_rows_match, cents
from voluum_sandbox import Dataset, SandboxServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

TZ = "America/New_York"
START_DATE = "2026-03-02T00:00:00Z"
END_DATE = "2026-03-07T00:00:00Z"  # wall clock in the report zone
START_LOCAL = datetime(2026, 3, 2)
END_LOCAL = datetime(2026, 3, 7)
LOOKBACK = 2
STREAMS = {"campaign_report", "conversions"}
STAMP = "row_settings"


@pytest.fixture(scope="module")
def srv() -> Iterator[SandboxServer]:
    """A sandbox on a small dataset in the past (so 'now' bounds nothing); never changed."""
    ds = Dataset(seed=21, start=date(2026, 3, 1), days=6, campaigns=6)
    assert ds.end_ts < time.time()
    with SandboxServer(ds, rate_limit=None) as server:
        yield server


def sync(
    srv: SandboxServer, streams: set[str], state: dict | None = None, **settings: Any
) -> SyncResult:
    settings = {"lookback_days": LOOKBACK, **settings}
    config = config_for(srv, start_date=START_DATE, end_date=END_DATE, **settings)
    return run_tap(config, streams, state=state)


def changed_lines(caplog: pytest.LogCaptureFixture) -> dict[str, list[str]]:
    """The WARNINGs saying a stream's settings changed, by stream."""
    lines: dict[str, list[str]] = {}
    for record in caplog.records:
        message = record.getMessage()
        if record.levelno == logging.WARNING and "since the last sync" in message:
            lines.setdefault(message.split(":")[0], []).append(message)
    return lines


def bucket(day: str, tz: str) -> str:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), ZoneInfo(tz)).isoformat()


def first_day(records: list[dict], field: str) -> str:
    return min(str(r[field])[:10] for r in records)


def workspace_campaigns(ds: Dataset, workspace: str) -> set[str]:
    return {c["id"] for c in ds.entities("campaign") if c["workspace"]["id"] == workspace}


def second_states_keep_the_old_stamp_until_a_window_is_done(
    first: SyncResult, second: SyncResult, stream: str
) -> None:
    """Every STATE before the re-read's first window keeps the old bookmark and its stamp.

    The new stamp goes out with the first window's bookmark, after that window's records.
    """
    old = bookmarks_of(first.final_state)[stream]
    records = 0
    stamps = []
    for message in second.messages:
        if message["type"] == "RECORD" and message["stream"] == stream:
            records += 1
        elif message["type"] == "STATE":
            mine = bookmarks_of(message["value"]).get(stream, {})
            new = mine.get(STAMP) != old[STAMP]
            stamps.append(new)
            if not new:
                assert mine["replication_key_value"] == old["replication_key_value"]
            else:
                assert records, "a new stamp before any window was written"
    assert stamps[0] is False and stamps[-1] is True
    assert stamps == sorted(stamps), "the old stamp came back"


CASES = {
    "timezone": ({"timezone": "UTC"}, {"timezone": TZ}, "from UTC to America/New_York"),
    "currency": ({}, {"currency": "EUR"}, "from (not set) to EUR"),
    "conversion_time_mode": (
        {"conversion_time_mode": "VISIT"},
        {"conversion_time_mode": "CONVERSION"},
        "from VISIT to CONVERSION",
    ),
    "workspace_ids": ({}, {"workspace_ids": "WS"}, "from (not set) to WS"),
}


@pytest.mark.parametrize("setting", list(CASES))
def test_a_changed_setting_reads_again_from_start_date(
    srv: SandboxServer, caplog: pytest.LogCaptureFixture, setting: str
) -> None:
    ds = srv.dataset
    before, after, said = CASES[setting]
    workspace = ds.workspaces[1]["id"]
    if setting == "workspace_ids":
        after = {"workspace_ids": [workspace]}
        said = f"from (not set) to {workspace}"
    before = {"timezone": TZ, **before}
    after = {**before, **after}
    first = sync(srv, STREAMS, **before)
    caplog.clear()
    caplog.set_level(logging.INFO)
    second = sync(srv, STREAMS, state=first.final_state, **after)
    assert first.failures == second.failures == {}

    # One WARNING per affected stream, naming the old and the new value; conversions are
    # not shaped by the conversion time mode (the tap never sends it there).
    affected = {"campaign_report"} if setting == "conversion_time_mode" else STREAMS
    lines = changed_lines(caplog)
    assert set(lines) == affected, lines
    for stream in affected:
        assert len(lines[stream]) == 1
        assert lines[stream][0] == (
            f"{stream}: {setting} changed {said} since the last sync: reading again from 2026-03-02"
        )
    stale = [r.getMessage() for r in caplog.records if "until you clear them" in r.getMessage()]
    assert len(stale) == (1 if setting in ("timezone", "workspace_ids") else 0), stale

    # The report: read again from start_date; the union equals the truth under the new
    # setting for every key it produces.
    tz = after["timezone"]
    truth = ds.truth_rows(
        ["campaign", "day"],
        START_LOCAL,
        END_LOCAL,
        tz,
        after.get("conversion_time_mode", "VISIT"),
        include="ALL",
        currency=after.get("currency", "USD"),
        workspaces=after.get("workspace_ids"),
    )
    assert truth != ds.truth_rows(
        ["campaign", "day"],
        START_LOCAL,
        END_LOCAL,
        before["timezone"],
        before.get("conversion_time_mode", "VISIT"),
        include="ALL",
    ), "the new setting changes the numbers"

    def key(record: dict) -> tuple:
        return (record["campaignId"], record["day"])

    assert_rows_match(second.records["campaign_report"], truth, key)
    union = {**first.keyed("campaign_report"), **second.keyed("campaign_report")}
    new_keys = {("default", bucket(day, tz), campaign): (campaign, day) for campaign, day in truth}
    assert new_keys.keys() <= union.keys()
    assert_rows_match([union[k] for k in new_keys], truth, key)

    # Conversions: read again from start_date when affected, else from the lookback only.
    conversions = second.records["conversions"]
    if "conversions" in affected:
        assert first_day(conversions, "postbackTimestamp") == "2026-03-02"
        expected = ds.conversions_between(START_LOCAL, END_LOCAL, tz)
        if setting == "workspace_ids":
            mine = workspace_campaigns(ds, workspace)
            expected = [c for c in expected if c["campaignId"] in mine]
        got = sorted((r["clickId"], r["conversionType"]) for r in conversions)
        assert got == sorted((c["clickId"], c["conversionType"]) for c in expected)
        assert {r["currency"] for r in conversions} <= {after.get("currency")}
        if setting == "timezone":
            revenue = {(c["clickId"], c["conversionType"]): c["revenue_cents"] for c in expected}
            for record in conversions:
                assert (
                    cents(record["revenue"]) == revenue[record["clickId"], record["conversionType"]]
                )
                assert record["postbackTimestamp"].endswith("-05:00")
    else:
        assert first_day(conversions, "postbackTimestamp") == "2026-03-04", "lookback only"

    # The new stamp goes out with the first window's STATE, not before.
    for stream in affected:
        second_states_keep_the_old_stamp_until_a_window_is_done(first, second, stream)
        stamp = bookmarks_of(second.final_state)[stream][STAMP]
        expected_text = ",".join(after[setting]) if setting == "workspace_ids" else after[setting]
        assert stamp[setting] == expected_text


CUSTOM = {"name": "campaign_custom", "group_by": ["campaign"]}
CUSTOM_CASES: dict[str, tuple[dict, list[str], Callable[[dict], tuple], str]] = {
    "group_by": (
        {**CUSTOM, "group_by": ["campaign", "country"]},
        ["campaign", "country", "day"],
        lambda r: (r["campaignId"], r["countryCode"], r["day"]),
        "group_by changed from campaign to campaign,country",
    ),
    "columns": (
        {**CUSTOM, "columns": ["visits", "revenue", "cost"]},
        ["campaign", "day"],
        lambda r: (r["campaignId"], r["day"]),
        "columns changed from all to cost,revenue,visits",
    ),
}


@pytest.mark.parametrize("change", list(CUSTOM_CASES))
def test_a_custom_reports_new_grouping_or_columns_read_again(
    srv: SandboxServer, caplog: pytest.LogCaptureFixture, change: str
) -> None:
    ds = srv.dataset
    report, group_by, key, said = CUSTOM_CASES[change]
    streams = {"campaign_custom", "campaign_report"}
    first = sync(srv, streams, custom_reports=[CUSTOM])
    caplog.clear()
    caplog.set_level(logging.INFO)
    second = sync(srv, streams, state=first.final_state, custom_reports=[report])
    assert first.failures == second.failures == {}
    lines = changed_lines(caplog)
    assert lines == {
        "campaign_custom": [
            f"campaign_custom: {said} since the last sync: reading again from 2026-03-02"
        ]
    }, "only the custom report changed"
    truth = ds.truth_rows(group_by, START_LOCAL, END_LOCAL, TZ, include="ALL")
    columns = report.get("columns")
    assert_rows_match(second.records["campaign_custom"], truth, key, columns)
    union = {**first.keyed("campaign_custom"), **second.keyed("campaign_custom")}
    produced = [r for r in union.values() if (columns or "countryCode" in r) and key(r) in truth]
    assert_rows_match(produced, truth, key, columns)
    assert first_day(second.records["campaign_report"], "day") == "2026-03-04", "lookback only"


def test_settings_that_do_not_shape_rows_change_nothing(
    srv: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    first = sync(srv, STREAMS, page_size=10_000, max_concurrency=4, reconcile="warn")
    caplog.clear()
    caplog.set_level(logging.INFO)
    second = sync(
        srv,
        STREAMS,
        state=first.final_state,
        page_size=7,
        max_concurrency=2,
        max_retries=2,
        report_window_days=1,
        lookback_days=1,
        reconcile="off",
    )
    assert changed_lines(caplog) == {}
    assert first_day(second.records["campaign_report"], "day") == "2026-03-05"
    assert first_day(second.records["conversions"], "postbackTimestamp") == "2026-03-05"


def test_a_state_from_before_stamps_is_taken_as_made_under_todays_settings(
    srv: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    first = sync(srv, STREAMS)
    old = first.final_state
    for stream in STREAMS:
        assert bookmarks_of(old)[stream][STAMP]["timezone"] == TZ
        del bookmarks_of(old)[stream][STAMP]
    caplog.clear()
    caplog.set_level(logging.INFO)
    second = sync(srv, STREAMS, state=old, currency="EUR")
    assert changed_lines(caplog) == {}, "no stamp: nothing to compare"
    assert first_day(second.records["campaign_report"], "day") == "2026-03-04"
    assert first_day(second.records["conversions"], "postbackTimestamp") == "2026-03-04"
    for stream in STREAMS:  # stamped with the next STATE, under today's settings
        assert bookmarks_of(second.final_state)[stream][STAMP]["currency"] == "EUR"
