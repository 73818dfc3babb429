"""Faults, kills, bad settings and secrets: the sync keeps every row and says what is wrong."""

from __future__ import annotations

import json
import random
import signal
import subprocess
from types import SimpleNamespace
from typing import TYPE_CHECKING

import backoff._sync
import pytest

from tests.conftest import config_for
from tests.helpers import SyncResult, bookmarks_of, parse_messages, run_cli, run_tap, tap_command
from tests.truth import (
    assert_conversions_match,
    assert_daily_report_matches,
    assert_entities_match,
)

if TYPE_CHECKING:
    from pathlib import Path

    from voluum_sandbox import Dataset, SandboxServer

STREAMS = {"campaigns", "campaign_report", "offer_report", "conversions"}
FAULTS = {
    "500": 0.04,
    "502_html": 0.04,
    "503": 0.04,
    "reset": 0.03,
    "truncated": 0.03,
    "invalid_json": 0.03,
    "burst_429": 0.02,
    "error_in_200": 0.02,
    "login": True,
}


def assert_equals_the_truth(records: dict[str, list[dict]], dataset: Dataset) -> None:
    """The streams of `STREAMS` hold exactly the sandbox's truth for the configured range."""
    assert_entities_match(records["campaigns"], dataset, "campaign")
    assert_daily_report_matches(records["campaign_report"], dataset, "campaign")
    assert_daily_report_matches(records["offer_report"], dataset, "offer")
    assert_conversions_match(records["conversions"], dataset)


@pytest.fixture(scope="module")
def clean(sandbox: SandboxServer, dataset: Dataset) -> SyncResult:
    """A sync without faults, itself checked against the truth before it serves as baseline."""
    result = run_tap(config_for(sandbox, page_size=15), STREAMS)
    assert_equals_the_truth(result.records, dataset)
    return result


def keyed_all(result: SyncResult) -> dict[str, dict]:
    return {stream: result.keyed(stream) for stream in STREAMS}


def values(keyed: dict[str, dict]) -> dict[str, list[dict]]:
    return {stream: list(rows.values()) for stream, rows in keyed.items()}


@pytest.mark.timeout(600)  # a 2-second token and every fault kind: one to two minutes of retries
def test_a_sync_under_faults_writes_exactly_the_clean_records(
    clean: SyncResult, fresh_sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_sandbox.configure(faults={**FAULTS, "seed": 11}, token_lifetime=2)
    fresh_sandbox.fail_next("reset", count=2, path="/report")
    faulty = run_tap(config_for(fresh_sandbox, page_size=15, max_retries=10), STREAMS)
    assert_equals_the_truth(faulty.records, fresh_sandbox.dataset)
    assert keyed_all(faulty) == keyed_all(clean)  # every other field too
    injected = fresh_sandbox.fault_counts
    log = fresh_sandbox.requests
    logins = sum(r["path"] == "/auth/access/session" and r["status"] == 200 for r in log)
    expired = sum(r["status"] == 401 for r in log)
    limited = sum(r["status"] == 429 for r in log)
    with capsys.disabled():
        print(
            f"\n[fault run] requests={len(log)} faults={injected} logins={logins} "
            f"401s={expired} 429s={limited}"
        )
    assert {
        "500",
        "502_html",
        "503",
        "reset",
        "truncated",
        "invalid_json",
        "burst_429",
    } <= injected.keys()
    assert logins >= 2, "a 2-second token must be renewed during the sync"


def test_retry_after_is_honoured(
    fresh_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The waits the retry loop computes are recorded instead of slept; that a 429 also
    # halves the limiter's rate is tests/test_limiter.py's business.
    slept: list[float] = []
    monkeypatch.setattr(backoff._sync, "time", SimpleNamespace(sleep=slept.append))
    fresh_sandbox.configure(retry_after=7)
    fresh_sandbox.fail_next("burst_429", count=2, path="/offer")
    result = run_tap(config_for(fresh_sandbox), {"offers"})
    assert_entities_match(result.records["offers"], fresh_sandbox.dataset, "offer")
    attempts = [r for r in fresh_sandbox.requests if r["path"] == "/offer"]
    assert [r["status"] for r in attempts] == [429, 429, 200]
    assert len(slept) == 2
    # Retry-After: 7 (the exponential backoff alone would say 0.5 s, then 1 s), plus jitter.
    assert all(7.0 <= wait <= 7.0 * 1.25 for wait in slept), slept


def test_timeouts_are_retried(fresh_sandbox: SandboxServer) -> None:
    fresh_sandbox.configure(faults={"slow_seconds": 2.5})
    fresh_sandbox.fail_next("slow", count=1, path="/lander")
    result = run_tap(config_for(fresh_sandbox, request_timeout=1), {"landers"})
    assert len(result.records["landers"]) == len(fresh_sandbox.dataset.entities("lander"))
    assert fresh_sandbox.fault_counts == {"slow": 1}  # the slow answer came too late: retried


def test_a_request_that_keeps_failing_ends_in_one_line(
    fresh_sandbox: SandboxServer, tmp_path: Path
) -> None:
    fresh_sandbox.fail_next("503", count=100, path="/report")
    config = config_for(fresh_sandbox, max_retries=2, max_concurrency=1)
    result = run_cli(config, tmp_path, streams={"campaigns", "offer_report"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "GET /report: HTTP 503 SERVICE_UNAVAILABLE" in last
    assert result.records["campaigns"], "streams before the failure were written"
    first_window = [
        r["query"]["to"][0]
        for r in fresh_sandbox.requests
        if r["path"] == "/report" and r["query"]["from"] == ["2026-03-05T00:00:00"]
    ]
    # The whole week: one try and max_retries=2 retries; then its first half once more,
    # with its own retries, before the stream fails.
    assert first_window == ["2026-03-12T00:00:00"] * 3 + ["2026-03-09T00:00:00"] * 3
    assert "reading it in halves" in result.stderr


def test_a_fatal_error_leaves_a_valid_state(
    clean: SyncResult, fresh_sandbox: SandboxServer, dataset: Dataset, tmp_path: Path
) -> None:
    config = config_for(
        fresh_sandbox, max_concurrency=1, max_retries=2, page_size=15, report_window_days=1
    )
    # Windows 1-3 go through; the 4th window's request fails on every try.
    fresh_sandbox.configure(
        faults={"schedule": {4: "503", 5: "503", 6: "503"}, "paths": ["/report"]}
    )
    failed = run_cli(config, tmp_path, streams={"campaign_report"})
    assert failed.returncode == 1
    assert "GET /report: HTTP 503" in failed.stderr.strip().splitlines()[-1]
    bookmark = bookmarks_of(failed.final_state)["campaign_report"]["replication_key_value"]
    assert bookmark.startswith("2026-03-07")  # the third window, fully written
    fresh_sandbox.configure(faults=None)
    resumed = run_cli(config, tmp_path, streams={"campaign_report"}, state=failed.final_state)
    assert resumed.returncode == 0
    union = {**failed.keyed("campaign_report"), **resumed.keyed("campaign_report")}
    assert_daily_report_matches(union.values(), dataset, "campaign")
    assert union == clean.keyed("campaign_report")  # every other field too


def read_until_killed(proc: subprocess.Popen, lines_to_read: int) -> list[str]:
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if len(lines) >= lines_to_read:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    return lines


def test_killed_again_and_again_then_resumed_loses_nothing(
    clean: SyncResult, fresh_sandbox: SandboxServer, dataset: Dataset, tmp_path: Path
) -> None:
    config = config_for(fresh_sandbox, page_size=15)
    rng = random.Random(5)
    written: list[dict] = []
    state: dict | None = None
    kills = 0
    for attempt in range(40):
        command = tap_command(config, tmp_path, STREAMS, state)
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        lines = read_until_killed(proc, rng.randint(20, 300 + 300 * attempt))
        messages = parse_messages("".join(lines))
        written += messages
        states = [m["value"] for m in messages if m["type"] == "STATE"]
        state = states[-1] if states else state
        if proc.returncode == 0:
            break
        kills += 1
    assert proc.returncode == 0, "the last run finished"
    assert kills >= 3, "the test must really kill the tap several times"
    union = keyed_all(SyncResult(written))
    assert_equals_the_truth(values(union), dataset)
    assert union == keyed_all(clean)  # every other field too


BAD_SETTINGS = [
    ({"access_key": None}, "access_key"),
    ({"access_id": None}, "access_id"),
    ({"start_date": "last tuesday"}, "start_date"),
    ({"end_date": "2026-03-01T00:00:00Z"}, "end_date must be after start_date"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"custom_reports": [{"name": "x", "group_by": ["planet"]}]}, "unknown dimension 'planet'"),
    (
        {"custom_reports": [{"name": "x", "group_by": ["os", "browser", "offer", "lander"]}]},
        "config['custom_reports'][0]['group_by']",
    ),
    (
        {"custom_reports": [{"name": "x", "group_by": ["os"]}, {"name": "x", "group_by": ["os"]}]},
        "used twice",
    ),
    ({"api_url": "http://api.voluum.com"}, "api_url"),
    ({"page_size": 0}, "page_size"),
    ({"page_size": 100_001}, "page_size"),
    ({"lookback_days": -1}, "lookback_days"),
]


@pytest.mark.parametrize(("change", "named"), BAD_SETTINGS)
def test_bad_settings_get_one_line_and_no_request(
    fresh_sandbox: SandboxServer, tmp_path: Path, change: dict, named: str
) -> None:
    config = {k: v for k, v in {**config_for(fresh_sandbox), **change}.items() if v is not None}
    result = run_cli(config, tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert named in errors[0]
    assert fresh_sandbox.requests == [], "no request before the settings are checked"
    assert not result.messages


def test_secrets_never_reach_any_output(fresh_sandbox: SandboxServer, tmp_path: Path) -> None:
    fresh_sandbox.configure(faults={"500": 0.1, "seed": 3}, token_lifetime=2)
    fresh_sandbox.fail_next("reset", count=1)
    config = config_for(fresh_sandbox, max_retries=10)
    result = run_cli(
        config,
        tmp_path,
        streams={"campaigns", "campaign_report"},
        env={"TAP_VOLUUM_LOGLEVEL": "DEBUG"},
    )
    assert result.returncode == 0
    assert "DEBUG" in result.stderr
    tokens = fresh_sandbox.sessions.tokens()
    assert tokens
    everything = result.stderr + json.dumps(result.messages, default=str)
    assert fresh_sandbox.access_key not in everything
    for token in tokens:
        assert token not in everything


def test_sigterm_exits_non_zero_with_a_valid_state(
    clean: SyncResult, fresh_sandbox: SandboxServer, dataset: Dataset, tmp_path: Path
) -> None:
    fresh_sandbox.configure(latency=0.05)
    command = tap_command(config_for(fresh_sandbox, page_size=15), tmp_path, STREAMS)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if len(lines) == 60:
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=60)
    lines.append(out)
    assert proc.returncode == 1
    assert "stopped by a signal" in err.strip().splitlines()[-1]
    written = SyncResult(parse_messages("".join(lines)))
    resumed = run_tap(config_for(fresh_sandbox, page_size=15), STREAMS, state=written.final_state)
    union = {
        s: {**written.keyed(s), **resumed.keyed(s)} if s in written.schemas else resumed.keyed(s)
        for s in STREAMS
    }
    assert_equals_the_truth(values(union), dataset)
    assert union == keyed_all(clean)  # every other field too
