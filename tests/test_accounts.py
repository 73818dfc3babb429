"""Many Voluum accounts in one run: each account's rows and state its own, one budget.

Three accounts served by one sandbox on one port (each its own key, seed, entities and
traffic), limited together as one client address. Every check compares one account's
records with that account's own truth, never with another run of the tap.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from tests.conftest import DATA_DAYS, DATA_START, config_for
from tests.helpers import SyncResult, bookmarks_of, parse_messages, run_cli, run_tap, tap_command
from tests.truth import (
    END,
    START,
    TZ,
    assert_conversions_match,
    assert_daily_report_matches,
    assert_entities_match,
)
from voluum_sandbox import Dataset, SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

STREAMS = {"campaigns", "offers", "campaign_report", "offer_report", "conversions"}
WINDOWED = ("campaign_report", "offer_report", "conversions")
NAMES = ("north", "south", "east")


@pytest.fixture(scope="module")
def datasets() -> list[Dataset]:
    return [
        Dataset(seed=seed, start=DATA_START, days=DATA_DAYS, campaigns=campaigns)
        for seed, campaigns in ((21, 5), (22, 7), (23, 4))
    ]


@pytest.fixture
def agency(datasets: list[Dataset]) -> Iterator[SandboxServer]:
    """Three accounts behind one address, 15 requests a second for all of them."""
    server = SandboxServer(accounts=datasets, port=0, rate_limit=15, rate_limit_scope="address")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def accounts_setting(server: SandboxServer, **wrong: str) -> list[dict]:
    return [
        {
            "name": name,
            "access_id": account.access_id,
            "access_key": wrong.get(name, account.access_key),
        }
        for name, account in zip(NAMES, server.accounts, strict=True)
    ]


def agency_config(server: SandboxServer, **overrides: object) -> dict:
    config = config_for(server, **overrides)
    del config["access_id"], config["access_key"]
    config.setdefault("accounts", accounts_setting(server))
    return config


def of(records: list[dict], account: str) -> list[dict]:
    return [r for r in records if r["account"] == account]


def assert_account_truth(records: dict[str, list[dict]], account: str, dataset: Dataset) -> None:
    """One account's records equal that account's truth, stream by stream."""
    assert_entities_match(of(records["campaigns"], account), dataset, "campaign")
    assert_entities_match(of(records["offers"], account), dataset, "offer")
    assert_daily_report_matches(of(records["campaign_report"], account), dataset, "campaign")
    assert_daily_report_matches(of(records["offer_report"], account), dataset, "offer")
    assert_conversions_match(of(records["conversions"], account), dataset)


def test_three_accounts_each_get_exactly_their_own_rows(
    agency: SandboxServer, datasets: list[Dataset], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    result = run_tap(agency_config(agency), STREAMS)
    assert result.failures == {}
    for name, dataset in zip(NAMES, datasets, strict=True):
        assert_account_truth(result.records, name, dataset)
    for stream in STREAMS:
        records = result.records[stream]
        assert {r["account"] for r in records} == set(NAMES), stream
        assert result.schemas[stream]["key_properties"][0] == "account"
        assert len(result.keyed(stream)) == len(records), f"{stream}: keys collide"
    said = [r.getMessage() for r in caplog.records]
    for name in NAMES:  # each account's plan and windows, named
        for stream in WINDOWED:
            assert sum(m.startswith(f"{name}/{stream}: plan: ") for m in said) == 1
            assert any(m.startswith(f"{name}/{stream}: window 1/") for m in said)
    for name in NAMES:
        marks = bookmarks_of(result.final_state, name)
        for stream in WINDOWED:
            assert marks[stream]["replication_key_value"], (name, stream)
    stats = agency.stats()
    assert "429" not in stats["by_status"]
    assert stats["max_per_second_all"] <= 15
    assert len(stats["by_account"]) == 3


def test_a_wrong_key_fails_that_account_alone(
    agency: SandboxServer, datasets: list[Dataset], tmp_path: Path
) -> None:
    config = agency_config(agency, accounts=accounts_setting(agency, south="not-the-key"))
    result = run_cli(config, tmp_path, streams=STREAMS)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "not-the-key" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 2, errors  # the account's line, then the run's summary
    assert "account south failed" in errors[0]
    assert errors[-1].endswith("tap-voluum: 1 account failed: south (access key rejected)")
    for name, dataset in ((NAMES[0], datasets[0]), (NAMES[2], datasets[2])):
        assert_account_truth(result.records, name, dataset)
        assert bookmarks_of(result.final_state, name)["campaign_report"]["replication_key_value"]
    assert not any(r["account"] == "south" for rs in result.records.values() for r in rs)
    south = bookmarks_of(result.final_state, "south")
    assert not any("replication_key_value" in south.get(stream, {}) for stream in WINDOWED)


def test_one_budget_for_every_account(agency: SandboxServer, tmp_path: Path) -> None:
    """Six daily reports of three accounts, one-day windows: never over 15 a second."""
    streams = {"campaign_report", "offer_report", "lander_report"}
    config = agency_config(agency, report_window_days=1, max_concurrency=8)
    result = run_cli(config, tmp_path, streams=streams)
    assert result.returncode == 0, result.stderr[-2000:]
    stats = agency.stats()
    assert stats["requests"] >= 3 * 3 * 7, "enough requests to fill several seconds"
    assert "429" not in stats["by_status"]
    assert stats["max_per_second_all"] <= 15


def test_killed_and_resumed_each_account_equals_its_truth(
    agency: SandboxServer, datasets: list[Dataset], tmp_path: Path
) -> None:
    agency.configure(latency=0.05)
    config = agency_config(agency, report_window_days=2, lookback_days=1)
    command = tap_command(config, tmp_path, STREAMS)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if len(lines) == 250:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    killed = SyncResult(parse_messages("".join(line for line in lines if line.endswith("\n"))))
    assert killed.states, "the kill came after some STATE"
    agency.clear_requests()
    resumed = run_tap(config, STREAMS, state=killed.final_state)
    union = {
        stream: list({**killed.keyed(stream), **resumed.keyed(stream)}.values())
        if stream in killed.schemas
        else resumed.records[stream]
        for stream in STREAMS
    }
    for name, dataset in zip(NAMES, datasets, strict=True):
        assert_account_truth(union, name, dataset)
    # Each account resumes where it stopped: a report read again no earlier than its
    # bookmark's day minus the lookback.
    marks = {name: bookmarks_of(killed.final_state, name) for name in NAMES}
    for entry in agency.requests:
        if entry["path"] != "/report" or entry.get("account") is None:
            continue
        name = NAMES[entry["account"]]
        bookmark = marks[name].get("campaign_report", {}).get("replication_key_value")
        if bookmark and "campaign" in entry["query"].get("groupBy", []):
            day = datetime.fromisoformat(bookmark).date().toordinal() - 1
            assert datetime.fromisoformat(entry["query"]["from"][0]).date().toordinal() >= day


@pytest.mark.parametrize("mode", ["--test", "--discover"])
def test_test_and_discover_name_the_account_that_fails(
    agency: SandboxServer, tmp_path: Path, mode: str
) -> None:
    config = agency_config(agency, accounts=accounts_setting(agency, east="not-the-key"))
    proc = subprocess.run(
        [*tap_command(config, tmp_path), mode], capture_output=True, text=True, check=False
    )
    assert "account east failed" in proc.stderr
    assert "not-the-key" not in proc.stderr and "Traceback" not in proc.stderr
    if mode == "--test":  # every account logged in; the one that failed is named
        assert proc.returncode == 1
        assert (
            proc.stderr.strip()
            .splitlines()[-1]
            .endswith("connection test failed: 1 account failed: east (access key rejected)")
        )
    else:  # the catalog of the accounts it could read
        assert proc.returncode == 0, proc.stderr[-2000:]
        catalog = json.loads(proc.stdout)
        assert {s["tap_stream_id"] for s in catalog["streams"]} >= STREAMS


def test_secrets_of_every_account_stay_out_of_debug_logs(
    agency: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = agency_config(agency)
    result = run_tap(config, {"campaigns", "campaign_report"})
    logged = "\n".join(r.getMessage() for r in caplog.records) + result.stderr
    for account in agency.accounts:
        assert account.access_key not in logged
    urls = [json.dumps(entry["query"]) + entry["path"] for entry in agency.requests]
    assert not any(a.access_key in url for a in agency.accounts for url in urls)


def test_exactly_one_form_of_credentials(sandbox: SandboxServer, tmp_path: Path) -> None:
    account = {"name": "a", "access_id": "x", "access_key": "y"}
    both = {**config_for(sandbox), "accounts": [account]}
    result = run_cli(both, tmp_path, args=("--discover",))
    assert result.returncode == 1
    assert "accounts and access_id/access_key are both set" in result.stderr
    twice = config_for(sandbox)
    twice.pop("access_id")
    twice.pop("access_key")
    twice["accounts"] = [
        {"name": "a", "access_id": "x", "access_key": "y"},
        {"name": "a", "access_id": "z", "access_key": "w"},
    ]
    result = run_cli(twice, tmp_path, args=("--discover",))
    assert result.returncode == 1
    assert "the name 'a' is used twice" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_account_may_set_its_own_time_zone(
    agency: SandboxServer, datasets: list[Dataset]
) -> None:
    accounts = accounts_setting(agency)
    accounts[1]["timezone"] = "UTC"
    result = run_tap(agency_config(agency, accounts=accounts), {"campaign_report"})
    south = of(result.records["campaign_report"], "south")
    assert {r["timeZone"] for r in south} == {"UTC"}
    assert_daily_report_matches(south, datasets[1], "campaign", tz="UTC")
    north = of(result.records["campaign_report"], "north")
    assert {r["timeZone"] for r in north} == {TZ}
    assert_daily_report_matches(north, datasets[0], "campaign", start=START, end=END)


@pytest.mark.parametrize("fault", ["503", "reset"])
def test_a_retried_request_keeps_its_account(
    agency: SandboxServer, datasets: list[Dataset], fault: str
) -> None:
    """A request retried after a fault is sent again for its own account, with its token."""
    agency.configure(faults={fault: 0.3, "seed": 5})
    result = run_tap(agency_config(agency, max_retries=10), {"campaign_report", "offer_report"})
    assert agency.fault_counts.get(fault, 0) >= 3, "faults were served"
    for name, dataset in zip(NAMES, datasets, strict=True):
        records = of(result.records["campaign_report"], name)
        assert_daily_report_matches(records, dataset, "campaign")
        assert_daily_report_matches(of(result.records["offer_report"], name), dataset, "offer")
