"""Two bugs the suite once let through (issue #20 §5), each now caught against the sandbox.

(a) Reconciliation comparing money with a tolerance of 1,000 instead of a cent: totals a
few cents off the rows, every count equal (`cents_off_day`), must be named (`warn`) or
stop the stream before that window's STATE (`fail`).
(b) `live_visits` keying two identical visits alike: two visits identical in every field
(`twin_visits`) must be two records with two keys, the same two on the next sync.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, datetime
from typing import TYPE_CHECKING

import pytest

from tests.conftest import config_for
from tests.helpers import SyncResult, bookmarks_of, run_cli, run_tap
from tests.truth import assert_conversions_match, assert_entities_match
from voluum_sandbox import Dataset, SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TZ = "America/New_York"
START = datetime(2026, 3, 2)
END = datetime(2026, 3, 5)
CENTS_DAY = "2026-03-03"
REPORTS = ("campaign_report", "offer_report", "campaign_hourly_report")


@pytest.fixture(scope="module")
def small() -> Dataset:
    return Dataset(seed=23, start=date(2026, 3, 1), days=6, campaigns=4)


@pytest.fixture
def cents_off(small: Dataset) -> Iterator[SandboxServer]:
    with SandboxServer(dataset=small, port=0, cents_off_day=CENTS_DAY) as server:
        yield server


def _config(server: SandboxServer, **overrides: object) -> dict:
    settings: dict = {
        "start_date": f"{START:%Y-%m-%d}T00:00:00Z",
        "end_date": f"{END:%Y-%m-%d}T00:00:00Z",
        "timezone": TZ,
    }
    return config_for(server, **{**settings, **overrides})


# --- (a) totals a few cents off ----------------------------------------------------------


def test_totals_cents_off_are_named_by_day_under_warn(
    cents_off: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    result = run_tap(_config(cents_off, reconcile="warn"), set(REPORTS))
    assert result.failures == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    for stream in REPORTS:
        said = [w for w in warnings if w.startswith(f"{stream}: ")]
        assert len(said) == 1, (stream, warnings)
        assert CENTS_DAY in said[0], said[0]
        assert "revenue=" in said[0] and "cost=" in said[0], said[0]
        assert "visits=" not in said[0] and "conversions=" not in said[0], "counts are equal"
        assert result.records[stream], "records are still written under warn"
    assert len(warnings) == len(REPORTS)


def test_totals_cents_off_stop_the_stream_before_its_state_under_fail(
    cents_off: SandboxServer, small: Dataset, tmp_path: Path
) -> None:
    streams = {"campaign_report", "conversions", "campaigns"}
    result = run_cli(_config(cents_off, reconcile="fail"), tmp_path, streams=streams)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "1 stream failed: campaign_report" in result.stderr
    failed = [line for line in result.stderr.splitlines() if "stream failed" in line]
    assert failed and all(CENTS_DAY in line for line in failed), failed
    bookmarks = bookmarks_of(result.final_state)
    bookmark = bookmarks.get("campaign_report", {}).get("replication_key_value")
    assert bookmark is None or bookmark[:10] < CENTS_DAY, "the bookmark stays before the day"
    assert_conversions_match(result.records["conversions"], small, START, END, TZ)
    assert_entities_match(result.records["campaigns"], small, "campaign")
    assert bookmarks["conversions"]["replication_key_value"][:10] == "2026-03-04"


def test_totals_of_other_days_still_reconcile(
    cents_off: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = _config(cents_off, start_date="2026-03-04T00:00:00Z")
    result = run_tap(config, {"campaign_report"})
    assert result.failures == {}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- (b) twin visits ---------------------------------------------------------------------


def _twins(result: SyncResult) -> dict[tuple, list[str]]:
    """Visits alike in every field but their key, grouped: {fields: [visitKey, ...]}."""
    groups: dict[tuple, list[str]] = defaultdict(list)
    for record in result.records["live_visits"]:
        fields = tuple(sorted((k, str(v)) for k, v in record.items() if k != "visitKey"))
        groups[fields].append(record["visitKey"])
    return {fields: keys for fields, keys in groups.items() if len(keys) > 1}


def test_identical_visits_are_two_records_with_two_stable_keys(small: Dataset) -> None:
    with SandboxServer(dataset=small, port=0, twin_visits=True) as server:
        config = _config(server)
        first = run_tap(config, {"campaigns", "live_visits"})
        second = run_tap(config, {"campaigns", "live_visits"}, state=first.final_state)
    active = [c for c in small.entities("campaign") if not c.get("deleted")]
    twins = _twins(first)
    assert len(twins) == len(active), "one pair of twins per active campaign"
    for keys in twins.values():
        assert len(keys) == 2 and len(set(keys)) == 2, keys
    assert len(first.keyed("live_visits")) == len(first.records["live_visits"])
    # The next sync reads the newest visits again: the same twins, under the same keys.
    again = _twins(second)
    assert again.keys() == twins.keys()
    for fields, keys in twins.items():
        assert sorted(again[fields]) == sorted(keys)
