"""A 400 read for what it says (issue #20 §3).

Voluum answers 400 for three kinds of trouble the notes list: `INVALID_QUERY` (a value it
does not understand, or a range it will not serve), `BAD_REQUEST` (a time format, or a
time range whose bounds are out of order) and `PARAMETER_MISSING`. A refused range says
nothing of formats or spellings: the tap must learn nothing from it.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from tap_voluum.errors import VoluumAPIError
from tap_voluum.tap import TapVoluum
from tests.conftest import config_for
from tests.helpers import SyncResult, bookmarks_of, catalog_for, run_cli, sync
from voluum_sandbox import Dataset, SandboxServer

if TYPE_CHECKING:
    from pathlib import Path

TZ = "America/New_York"


@pytest.mark.parametrize(
    ("code", "detail", "range_", "refused", "missing"),
    [
        ("BAD_REQUEST", "Invalid time range: 'to' must not be before 'from'", True, False, ""),
        ("BAD_REQUEST", "Parameter 'from' must not be after 'to'", True, False, ""),
        ("BAD_REQUEST", "Time range too long", True, False, ""),
        ("INVALID_QUERY", "Maximum period exceeded: at most 31 days", True, False, ""),
        ("INVALID_QUERY", "Too many days in the requested range", True, False, ""),
        ("INVALID_QUERY", "Requested period exceeds the maximum of 365 days", True, False, ""),
        ("BAD_REQUEST", "Invalid time format of parameter 'from': 2026-02-21", False, True, ""),
        ("INVALID_QUERY", "Invalid groupBy value 'traffic-source'", False, True, ""),
        ("INVALID_QUERY", "Invalid sort column: campaignId", False, True, ""),
        ("PARAMETER_MISSING", "Missing required parameter: to", False, False, "to"),
        ("NOT_FOUND", "Resource /x was not found on this server", False, False, ""),
    ],
)
def test_what_a_400_says(code: str, detail: str, range_: bool, refused: bool, missing: str) -> None:
    status = 404 if code == "NOT_FOUND" else 400
    exc = VoluumAPIError("GET /report: HTTP 400", status=status, code=code, detail=detail)
    assert exc.refuses_range is range_
    assert exc.is_refused_parameter is refused
    assert exc.missing_parameter == missing


# --- against the sandbox -----------------------------------------------------------------


@pytest.fixture(scope="module")
def recent() -> Dataset:
    """Four days of data up to today: what a `--test` reads."""
    return Dataset(seed=17, start=datetime.now(timezone.utc).date() - timedelta(days=3), days=4)


@pytest.fixture(scope="module")
def small() -> Dataset:
    return Dataset(seed=19, start=date(2026, 3, 1), days=6, campaigns=4)


def _run(config: dict, streams: set[str]) -> tuple[SyncResult, TapVoluum]:
    tap = TapVoluum(config=config, catalog=catalog_for(config, streams))
    return sync(tap), tap


def _event_log_requests(server: SandboxServer) -> list[dict]:
    return [r for r in server.requests if r["path"] == "/event-log"]


def test_bad_request_range_on_a_test_run_flips_no_time_format(
    recent: Dataset, tmp_path: Path
) -> None:
    """`--test` against a Voluum whose clock is 3 h behind: the range is refused, ISO kept."""
    soon = datetime.now(timezone.utc) - timedelta(minutes=5)
    with SandboxServer(dataset=recent, port=0, clock_behind=3 * 3600) as server:
        config = config_for(server, start_date=soon.isoformat(), end_date=None, timezone=TZ)
        result = run_cli(config, tmp_path, args=("--test",))
        asked = [r["query"]["from"][0] for r in _event_log_requests(server)]
        statuses = [r["status"] for r in _event_log_requests(server)]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "connection test passed" in result.stderr
    assert statuses == [400], "one refused request, no second try in another format"
    assert asked[0].endswith(":00:00Z"), "ISO times, never switched to epoch"
    warning = [line for line in result.stderr.splitlines() if "clock seems behind" in line]
    assert len(warning) == 1 and "WARNING" in warning[0]
    assert "Voluum refused the time format" not in result.stderr


def test_bad_request_range_in_a_sync_reads_nothing_and_keeps_the_bookmark(
    recent: Dataset,
) -> None:
    soon = datetime.now(timezone.utc) - timedelta(minutes=5)
    with SandboxServer(dataset=recent, port=0, clock_behind=3 * 3600) as server:
        config = config_for(server, start_date=soon.isoformat(), end_date=None, timezone=TZ)
        result, tap = _run(config, {"event_log"})
    assert result.failures == {}
    assert result.records["event_log"] == []
    assert "replication_key_value" not in bookmarks_of(result.final_state).get("event_log", {})
    assert tap.run.readings.event_log_time == "iso"
    assert tap.run.readings.version == 0, "nothing learned"


def test_bad_request_time_format_is_learned(small: Dataset) -> None:
    """The control: a refused time format does switch the event log to epoch times."""
    with SandboxServer(dataset=small, port=0, dialects=("evlog_epoch_only",)) as server:
        config = config_for(server, start_date="2026-03-02T00:00:00Z", timezone=TZ)
        result, tap = _run(config, {"event_log"})
    assert result.failures == {}
    assert tap.run.readings.event_log_time == "epoch"
    since = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp() * 1000
    assert len(result.records["event_log"]) == sum(
        1 for e in small.event_log if e["editTime"] >= since
    )


@pytest.mark.parametrize("stream", ["campaign_report", "conversions"])
def test_invalid_query_range_tries_no_other_spelling_sort_or_columns(
    small: Dataset, stream: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Windows of 3 days where Voluum serves 1 at most: no reading changes on the 400."""
    caplog.set_level(logging.INFO)
    with SandboxServer(small, range_cap=1, range_cap_wording="max_period") as server:
        config = config_for(
            server,
            start_date="2026-03-02T00:00:00Z",
            end_date="2026-03-05T00:00:00Z",
            timezone=TZ,
            report_window_days=3,
        )
        result, tap = _run(config, {stream})
        path = "/report" if stream == "campaign_report" else "/report/conversions"
        sent = [r["query"] for r in server.requests if r["path"] == path]
    assert sent
    for key in ("groupBy", "sort", "columns"):
        assert len({str(q.get(key)) for q in sent}) == 1, f"{key} never changed"
    assert sent[0].get("sort"), "sort is still sent"
    # What is learned is the span Voluum takes (windows halved 3 -> 2 -> 1 day), no reading
    # of a parameter: the groupBy spelling, sort and columns stay as they were.
    assert tap.run.readings.widest_span() == 1
    readings = tap.run.readings
    assert not readings._refused_sorts and not readings._refused_columns
    assert not readings._no_columns
    assert not [r for r in caplog.records if "Voluum refused a parameter" in r.getMessage()]
    failure = result.failures.get(stream)
    # The stream fails on the refused range (or, once windows narrow on one, reads them).
    assert failure is None or "Maximum period exceeded" in failure, failure


def test_invalid_query_spelling_is_learned(small: Dataset) -> None:
    """The control: a refused `groupBy` spelling is replaced for the rest of the run."""
    with SandboxServer(dataset=small, port=0, dialects=("groupby_ids",)) as server:
        config = config_for(
            server, start_date="2026-03-02T00:00:00Z", end_date="2026-03-04T00:00:00Z"
        )
        result, tap = _run(config, {"traffic_source_report"})
    assert result.failures == {}
    assert result.records["traffic_source_report"]
    assert tap.run.readings.version > 0


def test_parameter_missing_to_is_sent_from_then_on(
    small: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    """`PARAMETER_MISSING` for `to`: the tap sends `to`; it flips no time format."""
    caplog.set_level(logging.INFO)
    with SandboxServer(dataset=small, port=0, event_log_requires_to=True) as server:
        config = config_for(server, start_date="2026-03-02T00:00:00Z", timezone=TZ)
        result, tap = _run(config, {"event_log"})
        requests = _event_log_requests(server)
    assert result.failures == {}
    assert [r["status"] for r in requests].count(400) == 1
    assert all("to" in r["query"] for r in requests if r["status"] == 200)
    assert tap.run.readings.event_log_sends_to
    assert tap.run.readings.event_log_time == "iso", "a missing `to` says nothing of formats"
    said = [r.getMessage() for r in caplog.records]
    assert any("Voluum wants `to`" in m for m in said)
    assert not any("time format" in m for m in said)
    since = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp() * 1000
    assert len(result.records["event_log"]) == sum(
        1 for e in small.event_log if e["editTime"] >= since
    )
