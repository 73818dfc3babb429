"""A second sync after late data: the union of both syncs equals the sandbox's truth.

Each test starts a sandbox on a dataset of its own (the tests change it), syncs once, reads the
bookmark from the final STATE, adds late data at the bookmark's own second and hour and later
(``Dataset.add_late_data``), syncs again from the first sync's state, and compares the records of
both syncs, upserted by primary key (later wins, as a target does), with the truth helpers.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import config_for
from tests.helpers import SyncResult, bookmarks_of, run_tap
from voluum_sandbox import Dataset, SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator

TZ = "America/New_York"
DATA_START = date(2026, 3, 1)
DATA_DAYS = 6  # traffic until 2026-03-07T00:00Z (2026-03-06 19:00 in New York)
START_DATE = "2026-03-02T00:00:00Z"
END_DATE = "2026-03-07T00:00:00Z"  # wall clock in TZ: 2026-03-07T05:00Z
START_LOCAL = datetime(2026, 3, 2)
END_LOCAL = datetime(2026, 3, 7)
LIVE_LIMIT = 1000  # the most rows Voluum's live endpoints give (and the tap asks for)
UTC = timezone.utc


@pytest.fixture
def srv() -> Iterator[SandboxServer]:
    """A sandbox on a fresh dataset, in the past (so 'now' bounds nothing)."""
    ds = Dataset(seed=21, start=DATA_START, days=DATA_DAYS, campaigns=6)
    assert ds.end_ts < time.time(), "the dataset must lie in the past"
    with SandboxServer(ds, rate_limit=None) as server:
        yield server


def sync(
    srv: SandboxServer, streams: set[str], state: dict | None = None, **config: Any
) -> SyncResult:
    settings = config_for(srv, start_date=START_DATE, end_date=END_DATE, timezone=TZ, **config)
    return run_tap(settings, streams, state=state)


def union(first: SyncResult, second: SyncResult, stream: str) -> dict[tuple, dict]:
    """Both syncs' records by primary key, the second sync's copy winning."""
    return {**first.keyed(stream), **second.keyed(stream)}


def epoch(text: str) -> int:
    stamp = datetime.fromisoformat(text)
    assert stamp.utcoffset() is not None, text
    return int(stamp.timestamp())


def cents(value: Any) -> int:
    amount = Decimal(str(value or 0)) * 100
    assert amount == amount.to_integral_value(), value
    return int(amount)


def bookmark(state: dict, stream: str) -> str:
    return bookmarks_of(state)[stream]["replication_key_value"]


def millis(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


# --------------------------------------------------------------------------- campaign_report

REPORT_CASES = [
    pytest.param({}, id="visit-time-usd"),
    pytest.param(
        {"conversion_time_mode": "CONVERSION", "currency": "EUR"}, id="conversion-time-eur"
    ),
    pytest.param({"currency": "GBP", "workspace": 1}, id="gbp-one-workspace"),
]


@pytest.mark.parametrize("settings", REPORT_CASES)
def test_campaign_report_after_late_data_equals_the_truth(
    srv: SandboxServer, settings: dict
) -> None:
    ds = srv.dataset
    mode = settings.get("conversion_time_mode", "VISIT")
    currency = settings.get("currency", "USD")
    workspaces = [ds.workspaces[settings["workspace"]]["id"]] if "workspace" in settings else None
    config = {k: v for k, v in settings.items() if k != "workspace"}
    if workspaces:
        config["workspace_ids"] = workspaces

    def truth() -> dict[tuple, dict]:
        return ds.truth_rows(
            ["campaign", "day"],
            START_LOCAL,
            END_LOCAL,
            TZ,
            mode,
            include="ALL",
            currency=currency,
            workspaces=workspaces,
        )

    first = sync(srv, {"campaign_report"}, **config)
    mark = bookmark(first.final_state, "campaign_report")
    assert mark == "2026-03-06T00:00:00-05:00", "the last local day read"
    before = truth()
    at = datetime.fromisoformat(mark).astimezone(UTC)
    # Visits and late conversions at the bookmark's very second, in its hour and later; the
    # conversions land on clicks of the day before (within the lookback).
    added = ds.add_late_data(
        at,
        visits=24,
        conversions=10,
        seed=1,
        until=datetime(2026, 3, 6, 23, tzinfo=UTC),
        max_click_age=36 * 3600,
    )
    assert added["visits"][0]["ts"] == int(at.timestamp())
    after = truth()
    assert after != before, "the additions change the range read"
    second = sync(srv, {"campaign_report"}, state=first.final_state, **config)

    records = union(first, second, "campaign_report")
    got = {(r["campaignId"], r["day"]): r for r in records.values()}
    assert len(got) == len(records)
    assert got.keys() == after.keys()
    for key, expected in after.items():
        record = got[key]
        for metric in ("visits", "uniqueVisits", "clicks", "conversions", "impressions"):
            assert record[metric] == expected[metric], (key, metric)
        for n in range(1, 6):
            assert record[f"customConversions{n}"] == expected[f"customConversions{n}"], key
            assert cents(record[f"customRevenue{n}"]) == expected[f"customRevenue{n}_cents"], key
        assert cents(record["cost"]) == expected["cost_cents"], key
        assert cents(record["revenue"]) == expected["revenue_cents"], key
        assert record["bucketStart"] == f"{key[1]}T00:00:00-05:00"


# --------------------------------------------------------------------------- conversions


def test_conversions_after_late_conversions_equal_the_truth(srv: SandboxServer) -> None:
    ds = srv.dataset
    first = sync(srv, {"conversions"})
    mark = bookmark(first.final_state, "conversions")
    # The bookmark is the start of the last hour read (windows move it, not records).
    hour = datetime.fromisoformat(mark).astimezone(UTC)
    assert hour == hour.replace(minute=0, second=0)
    at = hour + timedelta(minutes=20, seconds=7)
    # At the bookmark's second and later in its hour (the tap reads up to end_date, 05:00Z)...
    added = ds.add_late_data(at, conversions=6, seed=2, max_click_age=36 * 3600)
    # ...and earlier in the same hour: late conversions older than the bookmark.
    added_early = ds.add_late_data(hour, conversions=4, seed=3, until=at, max_click_age=86400)
    new = added["conversions"] + added_early["conversions"]
    assert [c["postback_ts"] for c in added["conversions"]].count(int(at.timestamp())) >= 1
    assert any(c["postback_ts"] < int(at.timestamp()) for c in added_early["conversions"])
    second = sync(srv, {"conversions"}, state=first.final_state)

    truth = ds.conversions_between(START_LOCAL, END_LOCAL, TZ)
    records = union(first, second, "conversions")
    got = {
        (r["clickId"], r["conversionType"], epoch(r["postbackTimestamp"])): r
        for r in records.values()
    }
    expected = {(t["clickId"], t["conversionType"], t["postback_ts"]): t for t in truth}
    assert len(got) == len(records)
    assert got.keys() == expected.keys()
    for key, t in expected.items():
        assert cents(got[key]["revenue"]) == t["revenue_cents"], key
        assert epoch(got[key]["visitTimestamp"]) == t["visit_ts"], key
        assert got[key]["campaignId"] == t["campaignId"], key
    assert {(c["clickId"], c["conversionType"], c["postback_ts"]) for c in new} <= got.keys()


# --------------------------------------------------------------------------- live


def served(ds: Dataset, clicks_only: bool) -> dict[str, tuple[str, int]]:
    """What the live endpoint serves now: clickId -> (campaignId, visit time), active campaigns."""
    out = {}
    for c, campaign in enumerate(ds.raw_entities("campaign")):
        if campaign.get("deleted"):
            continue  # the tap does not ask for archived campaigns
        for event, j in ds.latest_visits(c, LIVE_LIMIT, ds.end_ts, clicks_only=clicks_only):
            out[ds.visit_id(event, j)] = (campaign["id"], ds.ev_ts[event])
    return out


@pytest.mark.parametrize("stream", ["live_visits", "live_clicks"])
def test_live_after_new_visits_equals_what_the_endpoint_serves(
    srv: SandboxServer, stream: str
) -> None:
    ds = srv.dataset
    clicks_only = stream == "live_clicks"
    streams = {"campaigns", "live_clicks", "live_visits"}
    start = int(datetime.fromisoformat(START_DATE).timestamp())
    before = served(ds, clicks_only)
    first = sync(srv, streams)
    partitions = first.final_state["bookmarks"][stream]["partitions"]
    marks = {p["context"]["campaignId"]: epoch(p["replication_key_value"]) for p in partitions}
    assert len(marks) >= 3
    added_ids: set[str] = set()
    for n, campaign in enumerate(sorted(marks)[:3]):
        # New visits in the very second of the campaign's bookmark, then later in its hour.
        at = datetime.fromtimestamp(marks[campaign], UTC)
        added = ds.add_late_data(at, visits=8, seed=n, campaign_ids=[campaign])
        assert added["visits"][0]["ts"] == marks[campaign]
        for visit in added["visits"]:
            added_ids.update(visit["clickIds" if clicks_only else "visitIds"])
    after = served(ds, clicks_only)
    assert added_ids <= after.keys()
    second = sync(srv, streams, state=first.final_state)

    records = union(first, second, stream)
    got = {r["clickId"]: (r["campaignId"], epoch(r["timestamp"])) for r in records.values()}
    assert len(got) == len(records)
    # The first sync read everything served since start_date; the second what is served at or
    # after each campaign's bookmark. Nothing else, nothing less.
    expected = {k: v for k, v in before.items() if v[1] >= start}
    expected.update({k: v for k, v in after.items() if v[1] >= marks[v[0]]})
    assert got == expected
    assert added_ids <= got.keys()


# --------------------------------------------------------------------------- event_log


def event_log_truth(ds: Dataset) -> dict[str, int]:
    since = millis(datetime.fromisoformat(START_DATE))
    return {e["id"]: e["editTime"] for e in ds.event_log if e["editTime"] >= since}


def check_event_log(first: SyncResult, second: SyncResult, ds: Dataset) -> None:
    records = union(first, second, "event_log")
    got = {r["id"]: r["editTimeMs"] for r in records.values()}
    assert len(got) == len(records), "one record per entry"
    assert got == event_log_truth(ds)
    for record in records.values():
        stamp = datetime.fromtimestamp(record["editTimeMs"] / 1000, UTC)
        assert datetime.fromisoformat(record["editTime"]) == stamp


def test_event_log_after_entries_at_and_after_the_bookmark_equals_the_truth(
    srv: SandboxServer,
) -> None:
    ds = srv.dataset
    first = sync(srv, {"event_log"})
    mark = datetime.fromisoformat(bookmark(first.final_state, "event_log")).astimezone(UTC)
    mark_ms = millis(mark)
    # At the bookmark's very millisecond, later in its second, in its hour, and later on.
    added = ds.add_late_data(mark, event_log_entries=12, seed=4, until=mark + timedelta(hours=30))
    times = sorted(e["editTime"] for e in added["event_log"])
    assert times[0] == mark_ms
    assert any(t // 1000 == mark_ms // 1000 and t != mark_ms for t in times)
    assert any(t >= (mark_ms // 3_600_000 + 1) * 3_600_000 for t in times)
    second = sync(srv, {"event_log"}, state=first.final_state)
    check_event_log(first, second, ds)


def test_event_log_after_late_entries_in_the_bookmarks_hour_equals_the_truth(
    srv: SandboxServer,
) -> None:
    ds = srv.dataset
    first = sync(srv, {"event_log"})
    mark = datetime.fromisoformat(bookmark(first.final_state, "event_log")).astimezone(UTC)
    hour = mark.replace(minute=0, second=0, microsecond=0)
    # Entries that show up late: older than the bookmark, in its hour (and its second).
    early = ds.add_late_data(hour, event_log_entries=4, seed=5, until=mark)
    same_second = ds.add_late_data(
        mark.replace(microsecond=0), event_log_entries=2, seed=6, until=mark
    )
    mark_ms = millis(mark)
    older = [e for e in early["event_log"] + same_second["event_log"] if e["editTime"] < mark_ms]
    assert len(older) >= 3
    ds.add_late_data(mark, event_log_entries=3, seed=7)
    second = sync(srv, {"event_log"}, state=first.final_state)
    check_event_log(first, second, ds)
