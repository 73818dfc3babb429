"""Numbers a user can trust: reconciliation with Voluum's totals, the column dictionary,
the backfill plan and its ETA, and a connection test and discovery that end in one line."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from typing import TYPE_CHECKING

import pytest
import requests

from tests.conftest import config_for
from tests.helpers import bookmarks_of, run_cli, run_tap, sandbox_login, tap_command
from tests.truth import assert_daily_report_matches
from voluum_sandbox import Dataset, SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TZ = "America/New_York"
START = datetime(2026, 3, 2)
END = datetime(2026, 3, 5)
LOST_DAY = "2026-03-03"
REPORTS = {"campaign_report", "offer_report", "campaign_hourly_report"}


@pytest.fixture(scope="module")
def small() -> Dataset:
    return Dataset(seed=5, start=date(2026, 3, 1), days=6, campaigns=4)


@pytest.fixture
def server(small: Dataset) -> Iterator[SandboxServer]:
    with SandboxServer(dataset=small, port=0) as srv:
        yield srv


def _config(srv: SandboxServer, **overrides: object) -> dict:
    settings: dict = {
        "start_date": f"{START:%Y-%m-%d}T00:00:00Z",
        "end_date": f"{END:%Y-%m-%d}T00:00:00Z",
        "timezone": TZ,
    }
    return config_for(srv, **{**settings, **overrides})


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_clean_data_reconciles_without_a_warning(
    server: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    result = run_tap(_config(server), REPORTS)
    assert result.failures == {}
    assert _warnings(caplog) == []
    said = [r.getMessage() for r in caplog.records if "reconciled" in r.getMessage()]
    assert "campaign_report: 1 window reconciled with Voluum's totals, 0 mismatches" in said
    assert "campaign_hourly_report: 1 window reconciled with Voluum's totals, 0 mismatches" in said


def test_warn_names_the_stream_and_day_that_lost_a_row(
    server: SandboxServer, small: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    server.configure(lose_row_day=LOST_DAY)
    result = run_tap(_config(server), REPORTS)
    assert result.failures == {}
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"campaign_report: window {LOST_DAY}: rows add up to visits=")
    assert "but Voluum's totals say visits=" in warnings[0]
    # Records are still written: every truth row but the one the answer lost.
    records = result.records["campaign_report"]
    assert (
        len(records)
        == len(small.truth_rows(["campaign", "day"], START, END, TZ, include="ALL")) - 1
    )
    assert_daily_report_matches(
        result.records["offer_report"], small, "offer", start=START, end=END, tz=TZ
    )
    said = [r.getMessage() for r in caplog.records if "reconciled" in r.getMessage()]
    assert "campaign_report: 3 windows reconciled with Voluum's totals, 1 mismatches" in said


@pytest.mark.parametrize("window_days", [None, 1])
def test_fail_stops_that_stream_only_and_keeps_its_bookmark_before_the_window(
    server: SandboxServer, small: Dataset, tmp_path: Path, window_days: int | None
) -> None:
    server.configure(lose_row_day=LOST_DAY)
    config = _config(server, reconcile="fail", report_window_days=window_days)
    result = run_cli(config, tmp_path, streams=REPORTS)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "1 stream failed: campaign_report" in result.stderr
    assert f"window {LOST_DAY}" in result.stderr  # the day, even in a window of three
    assert_daily_report_matches(
        result.records["offer_report"], small, "offer", start=START, end=END, tz=TZ
    )
    bookmarks = bookmarks_of(result.final_state)
    if window_days == 1:
        assert bookmarks["campaign_report"]["replication_key_value"].startswith("2026-03-02")
    else:  # one window of three days, not written whole: no bookmark at all
        assert "replication_key_value" not in bookmarks.get("campaign_report", {})
    assert bookmarks["offer_report"]["replication_key_value"].startswith("2026-03-04")


def test_off_reconciles_nothing(server: SandboxServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    server.configure(lose_row_day=LOST_DAY)
    result = run_tap(_config(server, reconcile="off"), {"campaign_report"})
    assert result.failures == {}
    assert not [r for r in caplog.records if "totals" in r.getMessage()]


def _column_info(srv: SandboxServer) -> list[dict]:
    answer = requests.get(
        f"{srv.url}/column/info", headers={"cwauth-token": sandbox_login(srv)}, timeout=10
    )
    return answer.json()["columnMappings"]


def test_report_columns_is_the_accounts_column_dictionary(server: SandboxServer) -> None:
    served = {m["key"]: m for m in _column_info(server)}
    result = run_tap(_config(server), {"report_columns", "campaign_report"})
    records = {r["key"]: r for r in result.records["report_columns"]}
    assert records.keys() == served.keys()
    for key, record in records.items():
        for field in ("label", "type", "canGroupBy"):
            assert record[field] == served[key][field], (key, field)
    assert result.schemas["report_columns"]["key_properties"] == ["account", "key"]
    # The labels name the account's custom conversions in the report schemas.
    properties = result.schemas["campaign_report"]["schema"]["properties"]
    label = served["customConversions1"]["label"]
    assert properties["customConversions1"]["description"].startswith(f"{label}: ")


def test_report_columns_is_empty_where_column_info_is_refused(
    small: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    with SandboxServer(dataset=small, port=0, dialects=("no_column_info",)) as srv:
        result = run_tap(_config(srv), {"report_columns", "campaign_report"})
    assert result.failures == {}
    assert result.records["report_columns"] == []
    said = [
        r
        for r in caplog.records
        if "report_columns" in r.getMessage() and "empty" in r.getMessage()
    ]
    assert len(said) == 1 and said[0].levelname == "INFO"
    assert_daily_report_matches(
        result.records["campaign_report"], small, "campaign", start=START, end=END, tz=TZ
    )


@pytest.mark.parametrize(
    ("window_days", "sizing", "windows"),
    [
        (None, "1 window of 3 days, about 1 request, about 0.1 s", ["1/1"]),
        (1, "3 windows of 1 day, about 3 requests, about 0.2 s", ["1/3", "2/3", "3/3"]),
    ],
)
def test_every_windowed_stream_logs_its_plan_and_an_eta(
    server: SandboxServer,
    caplog: pytest.LogCaptureFixture,
    window_days: int | None,
    sizing: str,
    windows: list[str],
) -> None:
    caplog.set_level("INFO")
    run_tap(_config(server, report_window_days=window_days), {"campaign_report", "conversions"})
    said = [r.getMessage() for r in caplog.records]
    for stream in ("campaign_report", "conversions"):
        plan = [m for m in said if m.startswith(f"{stream}: plan: ")]
        assert plan == [
            f"{stream}: plan: 2026-03-02 00:00 → 2026-03-05 00:00, {sizing} at 14 requests/s"
        ]
        progress = [m for m in said if m.startswith(f"{stream}: window ")]
        assert [m.split()[2] for m in progress] == windows
        assert all(" left" in m for m in progress)
        assert progress[-1].endswith("about 0.0 s left")


def test_connection_test_passes_in_one_line(server: SandboxServer, tmp_path: Path) -> None:
    result = run_cli(_config(server), tmp_path, args=("--test",))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ERROR" not in result.stderr and "Traceback" not in result.stderr
    last = [line for line in result.stderr.splitlines() if "connection test" in line]
    assert len(last) == 1 and last[0].endswith(
        "connection test passed: logged in, 19 streams readable"
    )
    assert not [m for m in result.messages if m["type"] in ("RECORD", "STATE")]


@pytest.mark.parametrize("mode", [("--test",), ("--discover",), ()])
def test_a_rejected_key_ends_every_mode_in_one_line(
    server: SandboxServer, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    result = run_cli(_config(server, access_key="not-the-key"), tmp_path, args=mode)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Voluum rejected the access key" in errors[0]
    assert "Traceback" not in result.stderr and "not-the-key" not in result.stderr


@pytest.mark.parametrize("mode", [("--test",), ("--discover",), ()])
def test_an_unreachable_api_ends_every_mode_in_one_line(
    server: SandboxServer, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    config = _config(server, api_url="http://127.0.0.1:9", max_retries=1)
    result = run_cli(config, tmp_path, args=mode)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert errors == [errors[-1]] and "could not reach Voluum" in errors[-1], errors
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("mode", [("--test",), ("--discover",), ("--about",), ()])
def test_a_bad_setting_ends_every_mode_in_one_line(
    server: SandboxServer, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    command = [*tap_command(_config(server, timezone="Mars/Olympus"), tmp_path), *mode]
    import subprocess

    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if mode == ("--about",):  # --about describes the tap, whatever the config says
        assert proc.returncode == 0 and "reconcile" in proc.stdout
        return
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "setting timezone" in errors[0], errors
    assert "Traceback" not in proc.stderr
    json.dumps(errors)
