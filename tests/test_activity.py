"""Live clicks/visits per campaign and the event log, against the sandbox."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from tap_voluum.streams.live import LIVE_LIMIT
from tests.conftest import config_for
from tests.helpers import run_tap

if TYPE_CHECKING:
    from voluum_sandbox import Dataset, SandboxServer

LIVE = {"live_clicks", "live_visits"}
TZ = "America/New_York"


def served_live(dataset: Dataset, stream: str) -> dict[str, dict]:
    """What the sandbox's live endpoint holds for each active campaign, by click id.

    The newest `LIVE_LIMIT` visits (or clicks) before the end of the data, each with its
    visit time (epoch seconds, `ts`), attribution and visit details, from the dataset.
    """
    cutoff = min(int(time.time()) + 1, dataset.end_ts)  # as the endpoint: nothing after now
    out: dict[str, dict] = {}
    for index, campaign in enumerate(dataset.campaigns):
        if campaign.get("deleted"):
            continue
        visits = dataset.latest_visits(
            index, LIVE_LIMIT, cutoff, clicks_only=stream == "live_clicks"
        )
        for event, j in visits:
            details = dataset.visit_details(event, j)
            out[details["clickId"]] = {
                "ts": dataset.ev_ts[event],
                **dataset.attribution(event),
                **details,
            }
    return out


@pytest.fixture(scope="module")
def first(sandbox: SandboxServer):
    sandbox.clear_requests()
    return run_tap(
        config_for(sandbox, start_date="2026-01-01T00:00:00Z"), {"campaigns", *LIVE, "event_log"}
    )


def test_live_streams_read_active_campaigns_only(first, sandbox: SandboxServer) -> None:
    active = {c["id"] for c in sandbox.dataset.entities("campaign") if not c.get("deleted")}
    archived = {c["id"] for c in sandbox.dataset.entities("campaign") if c.get("deleted")}
    assert archived
    asked = {
        r["path"].rsplit("/", 1)[1]
        for r in sandbox.requests
        if r["path"].startswith("/report/live/clicks/")
    }
    assert asked == active
    assert {r["campaignId"] for r in first.records["live_clicks"]} <= active
    assert {r["campaignId"] for r in first.records["live_visits"]} == active


def test_live_rows_match_the_endpoint(first, sandbox: SandboxServer) -> None:
    zone = ZoneInfo(TZ)
    for stream in LIVE:
        records = first.records[stream]
        assert records
        assert len(first.keyed(stream)) == len(records), "clickId is unique"
        expected = served_live(sandbox.dataset, stream)
        assert sorted(r["clickId"] for r in records) == sorted(expected)
        for record in records:
            served = expected[record["clickId"]]
            stamp = datetime.fromisoformat(record["timestamp"])
            assert int(stamp.timestamp()) == served["ts"], record["clickId"]
            assert stamp.utcoffset() == datetime.fromtimestamp(served["ts"], zone).utcoffset()
            different = {  # an empty text is written as null (tap_voluum.shapes)
                field: (record.get(field), value)
                for field, value in served.items()
                if field != "ts" and record.get(field) != (value if value != "" else None)
            }
            assert not different, (stream, record["clickId"], different)
    clicks = {r["clickId"] for r in first.records["live_clicks"]}
    visits = {r["clickId"] for r in first.records["live_visits"]}
    assert clicks, "clicks are visits that clicked through"
    assert len(first.records["live_visits"]) >= len(first.records["live_clicks"])
    assert visits & clicks


def test_live_bookmarks_are_kept_per_campaign(first) -> None:
    partitions = first.final_state["bookmarks"]["live_clicks"]["partitions"]
    by_campaign = {p["context"]["campaignId"]: p["replication_key_value"] for p in partitions}
    for campaign, latest in by_campaign.items():
        rows = [r for r in first.records["live_clicks"] if r["campaignId"] == campaign]
        assert (
            latest == max(rows, key=lambda r: datetime.fromisoformat(r["timestamp"]))["timestamp"]
        )


def test_a_second_sync_adds_only_new_events(first, sandbox: SandboxServer) -> None:
    again = run_tap(
        config_for(sandbox, start_date="2026-01-01T00:00:00Z"),
        {"campaigns", *LIVE, "event_log"},
        state=first.final_state,
    )
    for stream in (*LIVE, "event_log"):
        new_keys = again.keyed(stream).keys() - first.keyed(stream).keys()
        assert not new_keys, f"{stream} gained rows though nothing happened"
        # Only the boundary rows (at the bookmark itself) may be read again.
        assert len(again.records[stream]) <= len(first.records[stream]) // 4 + 12


def test_event_log_equals_the_sandbox_history(first, sandbox: SandboxServer) -> None:
    since = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp() * 1000
    expected = [e for e in sandbox.dataset.event_log if e["editTime"] >= since]
    records = first.records["event_log"]
    assert len(records) == len(expected)
    assert len(first.keyed("event_log")) == len(records), "two edits in one second stay two rows"
    assert sorted(r["editTimeMs"] for r in records) == sorted(e["editTime"] for e in expected)
    assert {r["actionType"] for r in records} >= {"CREATE", "CHANGE"}


@pytest.mark.parametrize("status", [403, 404])
def test_accounts_without_these_endpoints_still_finish(
    fresh_sandbox: SandboxServer, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    fresh_sandbox.configure(live_status=status, event_log_status=status)
    caplog.set_level("INFO")
    result = run_tap(config_for(fresh_sandbox), {"campaigns", *LIVE, "event_log", "offers"})
    assert result.records["offers"] and result.records["campaigns"]
    assert not result.records["live_clicks"] and not result.records["event_log"]
    said = [r.getMessage() for r in caplog.records if "so the stream is empty" in r.getMessage()]
    assert len(said) == 3  # live_clicks, live_visits, event_log: once each
    live_calls = [r for r in fresh_sandbox.requests if r["path"].startswith("/report/live/clicks/")]
    assert len(live_calls) == 1, "after the first 403/404 the stream stops asking"
