"""What a run learned about how Voluum reads parameters, kept in the state (issue #20 §4).

Run 1 against a sandbox dialect refuses the handful of requests it does today; run 2 from
run 1's final state refuses none and gives the same records (equal to the sandbox's
truth). Readings that are wrong for the Voluum at hand (id spellings against one that
takes dashed ones only, epoch times against one that takes ISO only) are learned again.
"""

from __future__ import annotations

import logging
from datetime import date, timezone
from typing import TYPE_CHECKING

import pytest

from tests.conftest import short_config
from tests.helpers import SyncResult, run_cli, run_tap
from tests.truth import (
    CUSTOM_COUNTRY,
    DAILY_REPORTS,
    SHORT_END,
    SHORT_START,
    assert_daily_report_matches,
    assert_rows_match,
)
from voluum_sandbox import Dataset, SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TZ = "America/New_York"
START = SHORT_START
END = SHORT_END
CUSTOM = CUSTOM_COUNTRY
STREAMS = {*DAILY_REPORTS, "campaign_country", "conversions", "event_log"}
TAKEN_OVER = "what earlier runs learned of this Voluum, taken over"


@pytest.fixture(scope="module")
def small() -> Dataset:
    return Dataset(seed=11, start=date(2026, 3, 1), days=6, campaigns=5)


@pytest.fixture
def server(request: pytest.FixtureRequest, small: Dataset) -> Iterator[SandboxServer]:
    with SandboxServer(dataset=small, port=0, dialects=request.param) as srv:
        yield srv


def config(server: SandboxServer) -> dict:
    return short_config(server, END)


def refused(server: SandboxServer) -> list[dict]:
    """The requests Voluum refused since the log was last cleared."""
    return [r for r in server.requests if r["status"] == 400]


def assert_reports_equal_the_truth(result: SyncResult, ds: Dataset) -> None:
    assert result.failures == {}
    for stream, dimension in DAILY_REPORTS.items():
        assert_daily_report_matches(
            result.records[stream], ds, dimension, start=START, end=END, tz=TZ
        )
    assert_rows_match(
        result.records["campaign_country"],
        ds.truth_rows(["campaign", "country", "day"], START, END, TZ, include="ALL"),
        lambda r: (r["campaignId"], r["countryCode"], r["day"]),
    )


def taken_over(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if TAKEN_OVER in r.getMessage()]


@pytest.mark.parametrize(
    ("server", "learned"),
    [
        (("groupby_ids",), {"traffic-source": "trafficSourceId"}),
        (("sort_no_ids",), {"id_sorts_refused": True}),
        (("evlog_epoch_only",), {"event_log_time": "epoch"}),
        (("groupby_ids", "sort_no_ids", "evlog_epoch_only"), {"id_sorts_refused": True}),
    ],
    indirect=["server"],
    ids=["groupby_ids", "sort_no_ids", "evlog_epoch_only", "three_at_once"],
)
def test_a_second_run_refuses_nothing(
    server: SandboxServer, learned: dict, caplog: pytest.LogCaptureFixture
) -> None:
    ds = server.dataset
    first = run_tap(config(server), STREAMS)
    assert_reports_equal_the_truth(first, ds)
    first_refused = refused(server)
    assert 1 <= len(first_refused) <= 6, "a handful, as today"
    if server.dialects == {"groupby_ids"}:
        spellings = sorted(r["query"]["groupBy"][0] for r in first_refused)
        assert spellings == ["affiliate-network", "traffic-source"]
    kept = first.final_state["readings"]
    for name, value in learned.items():
        assert kept.get(name, kept["group_by"].get(name)) == value, kept

    server.clear_requests()
    caplog.clear()
    caplog.set_level(logging.INFO)
    second = run_tap(config(server), STREAMS, state=first.final_state)
    assert refused(server) == [], [(r["path"], r["query"]) for r in refused(server)]
    assert_reports_equal_the_truth(second, ds)
    for stream in (*DAILY_REPORTS, "campaign_country"):
        assert second.keyed(stream) == first.keyed(stream), stream
    for stream in ("conversions", "event_log"):  # from their bookmarks: a part, the same
        assert second.records[stream], stream
        assert second.keyed(stream).items() <= first.keyed(stream).items(), stream
    lines = taken_over(caplog)
    assert len(lines) == 1, lines
    assert second.final_state["readings"] == kept
    for state in second.states:  # every STATE carries them
        assert state["readings"] == kept


WRONG = {
    "group_by": {
        "traffic-source": "trafficSourceId",
        "affiliate-network": "affiliateNetworkId",
        "country": "countryCode",
    },
    "event_log_time": "epoch",
}


@pytest.mark.parametrize(
    ("server", "relearned"),
    [
        ((), False),
        (("groupby_dashed", "evlog_iso_only"), True),
    ],
    indirect=["server"],
    ids=["plain", "dashed_and_iso_only"],
)
def test_readings_wrong_for_this_voluum_are_learned_again(
    server: SandboxServer, relearned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    ds = server.dataset
    caplog.set_level(logging.INFO)
    result = run_tap(config(server), STREAMS, state={"readings": WRONG})
    assert_reports_equal_the_truth(result, ds)
    since = START.replace(tzinfo=timezone.utc).timestamp() * 1000
    expected = sorted(e["editTime"] for e in ds.event_log if e["editTime"] >= since)
    assert [r["editTimeMs"] for r in result.records["event_log"]] == expected
    lines = taken_over(caplog)
    assert len(lines) == 1
    assert "affiliate-network=affiliateNetworkId" in lines[0]
    assert "event log times epoch" in lines[0]
    kept = result.final_state["readings"]
    if relearned:
        assert 1 <= len(refused(server)) <= 6
        assert kept["group_by"] == {
            "affiliate-network": "affiliate-network",
            "country": "country-code",
            "traffic-source": "traffic-source",
        }
        assert kept["event_log_time"] == "iso"
    else:
        assert refused(server) == []
        assert kept == {**kept, **WRONG}, "nothing refused: nothing learned again"


def test_a_malformed_readings_entry_is_ignored(small: Dataset) -> None:
    with SandboxServer(dataset=small, port=0, dialects=("groupby_ids",)) as server:
        state = {"readings": {"group_by": ["x"], "widest_span_days": "7", "event_log_time": 3}}
        result = run_tap(config(server), {"traffic_source_report"}, state=state)
        assert result.failures == {}
        assert [r["query"]["groupBy"][0] for r in refused(server)] == ["traffic-source"]
        assert result.final_state["readings"]["group_by"] == {"traffic-source": "trafficSourceId"}


def test_the_command_line_takes_them_over_from_a_state_file(small: Dataset, tmp_path: Path) -> None:
    """As Meltano runs the tap: `--state` with the last STATE's value, as stored."""
    with SandboxServer(dataset=small, port=0, dialects=("groupby_ids",)) as server:
        streams = {"traffic_source_report", "affiliate_network_report"}
        first = run_cli(config(server), tmp_path, streams=streams)
        assert len(refused(server)) == 2
        server.clear_requests()
        second = run_cli(config(server), tmp_path, streams=streams, state=first.final_state)
    assert second.returncode == 0, second.stderr[-2000:]
    assert refused(server) == []
    assert TAKEN_OVER in second.stderr
    for stream in streams:
        assert second.keyed(stream) == first.keyed(stream)
