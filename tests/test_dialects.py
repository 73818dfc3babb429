"""Every reading of the real API that public clients disagree on gives the same records.

For each sandbox dialect (`../shared/voluum-api.md` §9), a full sync (entities, the seven
built-in reports, a custom campaign x country report, conversions, the event log and the
live streams) is compared with the sandbox's truth, every record is checked against the
schema the tap declared, and the requests Voluum refused are counted: a fallback costs a
handful of them per run, not one per window.
"""

from __future__ import annotations

from datetime import date, timedelta, timezone
from typing import TYPE_CHECKING

import jsonschema
import pytest

from tap_voluum.client import PageHead, VoluumClient
from tests.conftest import short_config
from tests.helpers import SyncResult, bookmarks_of, run_cli, run_tap
from tests.test_activity import served_live
from tests.truth import (
    CUSTOM_COUNTRY,
    DAILY_REPORTS,
    ENTITY_STREAMS,
    SHORT_END,
    SHORT_START,
    assert_conversions_match,
    assert_daily_report_matches,
    assert_entities_match,
    assert_rows_match,
)
from voluum_sandbox import DIALECTS, Dataset, SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import requests

TZ = "America/New_York"
START = SHORT_START
END = SHORT_END
DAILY = DAILY_REPORTS
CUSTOM = CUSTOM_COUNTRY
STREAMS = {
    *DAILY,
    *ENTITY_STREAMS,
    "campaign_hourly_report",
    "campaign_country",
    "conversions",
    "event_log",
    "live_clicks",
    "live_visits",
}
# Requests Voluum may refuse in one run while the tap finds the reading it follows.
MOST_REFUSED = 6


@pytest.fixture(scope="module")
def small() -> Dataset:
    """Five days of data around the range, five campaigns: quick to sync many times."""
    return Dataset(seed=11, start=date(2026, 3, 1), days=6, campaigns=5)


def _config(server: SandboxServer) -> dict:
    return short_config(server, END)


@pytest.fixture(scope="module", params=["plain", *DIALECTS])
def dialect_sync(
    request: pytest.FixtureRequest, small: Dataset
) -> Iterator[tuple[str, SyncResult, SandboxServer]]:
    name = request.param
    dialects = () if name == "plain" else (name,)
    with SandboxServer(dataset=small, port=0, dialects=dialects) as server:
        streams = STREAMS - {"flow_report"} if name == "flow_report_broken" else STREAMS
        yield name, run_tap(_config(server), streams), server


def test_reports_equal_the_truth(dialect_sync: tuple[str, SyncResult, SandboxServer]) -> None:
    name, result, server = dialect_sync
    assert result.failures == {}
    for stream, dimension in DAILY.items():
        if stream == "flow_report" and name == "flow_report_broken":
            continue
        assert_daily_report_matches(
            result.records[stream], server.dataset, dimension, start=START, end=END, tz=TZ
        )
    expected = server.dataset.truth_rows(
        ["campaign", "country", "day"], START, END, TZ, include="ALL"
    )
    assert_rows_match(
        result.records["campaign_country"],
        expected,
        lambda r: (r["campaignId"], r["countryCode"], r["day"]),
    )


def test_hourly_rows_carry_integer_hours(
    dialect_sync: tuple[str, SyncResult, SandboxServer],
) -> None:
    _, result, server = dialect_sync
    expected: dict[tuple, dict] = {}
    day = START
    while day < END:
        rows = server.dataset.truth_rows(
            ["campaign", "hour"], day, day + timedelta(days=1), TZ, include="ALL"
        )
        for (campaign, hour), row in rows.items():
            expected[(campaign, day.date().isoformat(), hour)] = row
        day += timedelta(days=1)
    records = result.records["campaign_hourly_report"]
    assert_rows_match(records, expected, lambda r: (r["campaignId"], r["day"], r["hour"]))
    for record in records:
        assert isinstance(record["hour"], int)
        assert record["bucketStart"][11:13] == f"{record['hour']:02d}"


def test_conversions_entities_and_event_log_equal_the_truth(
    dialect_sync: tuple[str, SyncResult, SandboxServer],
) -> None:
    _, result, server = dialect_sync
    assert_conversions_match(result.records["conversions"], server.dataset, START, END, TZ)
    for stream, kind in ENTITY_STREAMS.items():
        assert_entities_match(result.records[stream], server.dataset, kind)
    since = START.replace(tzinfo=timezone.utc).timestamp() * 1000
    expected = sorted(e["editTime"] for e in server.dataset.event_log if e["editTime"] >= since)
    records = result.records["event_log"]
    assert [r["editTimeMs"] for r in records] == expected, "all entries, oldest first"
    assert len(result.keyed("event_log")) == len(records)


def test_live_streams_keep_one_record_per_event(
    dialect_sync: tuple[str, SyncResult, SandboxServer],
) -> None:
    _, result, server = dialect_sync
    for stream in ("live_clicks", "live_visits"):
        since = START.replace(tzinfo=timezone.utc).timestamp()  # start_date: the first bookmark
        served = {k: v for k, v in served_live(server.dataset, stream).items() if v["ts"] >= since}
        records = result.records[stream]
        assert len(result.keyed(stream)) == len(records) == len(served), stream
        assert sorted(r["externalId"] for r in records) == sorted(
            s["externalId"] for s in served.values()
        )


def test_every_record_fits_its_declared_schema(
    dialect_sync: tuple[str, SyncResult, SandboxServer],
) -> None:
    _, result, _ = dialect_sync
    for stream, records in result.records.items():
        validator = jsonschema.Draft7Validator(result.schemas[stream]["schema"])
        for record in records:
            errors = [e.message for e in validator.iter_errors(record)]
            assert not errors, (stream, errors[:3])


def test_fallbacks_cost_a_handful_of_refused_requests(
    dialect_sync: tuple[str, SyncResult, SandboxServer],
) -> None:
    name, _, server = dialect_sync
    refused = [r for r in server.requests if r["status"] == 400]
    if name == "plain":
        assert refused == []
    else:
        assert len(refused) <= MOST_REFUSED, [(r["path"], r["query"]) for r in refused]
    report_requests = [r for r in server.requests if r["path"] == "/report"]
    # Seven reports and a custom one, each read in one window of the whole three days;
    # more requests only for paging and probes.
    reports = 7 if name == "flow_report_broken" else 8
    assert len(report_requests) >= reports
    if name not in ("page_cap", "flow_report_broken"):
        assert len(report_requests) <= reports + MOST_REFUSED
    spans = {
        (r["query"]["from"][0], r["query"]["to"][0])
        for r in report_requests
        if r["status"] == 200 and r["query"].get("limit") != ["1"]
    }
    assert spans == {(f"{START:%Y-%m-%dT%H:00:00}", f"{END:%Y-%m-%dT%H:00:00}")}


def test_a_reading_learned_once_holds_for_the_whole_run(
    small: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    """`groupby_ids`: the dashed spelling is refused once, then never sent again."""
    caplog.set_level("INFO")
    with SandboxServer(dataset=small, port=0, dialects=("groupby_ids",)) as server:
        config = {**_config(server), "custom_reports": []}
        result = run_tap(config, {"traffic_source_report", "affiliate_network_report"})
        assert result.failures == {}
        reports = [r for r in server.requests if r["path"] == "/report"]
        refused = [r["query"]["groupBy"][0] for r in reports if r["status"] == 400]
        assert sorted(refused) == ["affiliate-network", "traffic-source"]
        sent = [r["query"]["groupBy"][0] for r in reports if r["status"] == 200]
        assert "traffic-source" not in sent and "trafficSourceId" in sent
        notes = [r for r in caplog.records if "Voluum refused a parameter" in r.getMessage()]
        assert len(notes) == 2, "one INFO line per stream that changed its reading"
        assert {r.levelname for r in notes} == {"INFO"}


def test_a_stream_voluum_refuses_fails_alone(small: Dataset, tmp_path: Path) -> None:
    """`flow_report_broken`: flow_report fails, every other stream equals the truth, exit 1."""
    with SandboxServer(dataset=small, port=0, dialects=("flow_report_broken",)) as server:
        streams = {"campaign_report", "flow_report", "offer_report", "conversions", "campaigns"}
        result = run_cli(_config(server), tmp_path, streams=streams)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert errors and all("flow_report" in line for line in errors), errors
    assert "1 stream failed: flow_report" in result.stderr
    assert result.records["flow_report"] == []
    for stream, dimension in (("campaign_report", "campaign"), ("offer_report", "offer")):
        assert_daily_report_matches(
            result.records[stream], small, dimension, start=START, end=END, tz=TZ
        )
    assert_conversions_match(result.records["conversions"], small, START, END, TZ)
    assert_entities_match(result.records["campaigns"], small, "campaign")
    bookmarks = bookmarks_of(result.final_state)
    assert bookmarks["campaign_report"]["replication_key_value"].startswith("2026-03-04")
    assert "replication_key_value" not in bookmarks.get("flow_report", {})


def test_a_window_short_of_total_rows_is_an_error_not_a_bookmark(
    small: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows that do not add up to totalRows stop the stream before that window's STATE."""
    read_page = VoluumClient.read_page

    def one_row_missing(self: VoluumClient, response: requests.Response) -> PageHead:
        head = read_page(self, response)
        url = response.request.url or ""
        if "groupBy=campaign&" in url and "from=2026-03-03" in url and head.totalRows:
            head.totalRows += 1  # Voluum counts a row it never serves
        return head

    monkeypatch.setattr(VoluumClient, "read_page", one_row_missing)
    with SandboxServer(dataset=small, port=0) as server:
        config = {
            **_config(server),
            "page_size": 7,
            "max_concurrency": 1,
            "custom_reports": [],
            "report_window_days": 1,
        }
        result = run_tap(config, {"campaign_report", "offer_report"})
    assert set(result.failures) == {"campaign_report"}
    assert "not whole" in result.failures["campaign_report"]
    assert_daily_report_matches(
        result.records["offer_report"], small, "offer", start=START, end=END, tz=TZ
    )
    bookmark = bookmarks_of(result.final_state)["campaign_report"]["replication_key_value"]
    assert bookmark.startswith("2026-03-02"), "the bookmark stays before the broken window"
    assert max(r["day"] for r in result.records["campaign_report"]) == "2026-03-03"
