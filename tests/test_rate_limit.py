"""The shared limiter against a sandbox in its own process, counted by the sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from tests.helpers import run_cli
from tests.truth import assert_daily_report_matches

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from voluum_sandbox import Dataset


@pytest.fixture
def sandbox_process() -> Iterator[dict[str, str]]:
    """`voluum-sandbox` in a process of its own, so its clock sees real arrivals."""
    command = [
        sys.executable,
        "-m",
        "voluum_sandbox",
        "--port",
        "0",
        "--seed",
        "7",
        "--start",
        "2026-02-20",
        "--days",
        "30",
        "--latency",
        "0.05",
        "--rate-limit",
        "11",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    said: dict[str, str] = {}
    while "url" not in said:
        line = proc.stdout.readline()
        assert line, "the sandbox exited before printing its URL"
        key, _, value = line.strip().partition("=")
        said[key] = value
    yield said
    proc.terminate()
    proc.wait(timeout=10)


def test_never_more_than_the_ceiling_in_any_sliding_second(
    sandbox_process: dict[str, str], dataset: Dataset, tmp_path: Path
) -> None:
    config = {
        "access_id": sandbox_process["access_id"],
        "access_key": sandbox_process["access_key"],
        "api_url": sandbox_process["url"],
        "start_date": "2026-02-21T00:00:00Z",
        "end_date": "2026-03-18T00:00:00Z",
        "page_size": 4,
        "max_requests_per_second": 10,
        "max_concurrency": 4,
        "report_window_days": 1,
    }
    result = run_cli(config, tmp_path, streams={"campaign_report", "offer_report"})
    assert result.returncode == 0
    # The process's sandbox serves the `dataset` fixture's data (same seed and shape).
    span = {"start": datetime(2026, 2, 21), "end": datetime(2026, 3, 18), "tz": "UTC"}
    assert_daily_report_matches(result.records["campaign_report"], dataset, "campaign", **span)
    assert_daily_report_matches(result.records["offer_report"], dataset, "offer", **span)
    with urllib.request.urlopen(f"{sandbox_process['url']}/__sandbox__/stats") as answer:
        stats = json.load(answer)
    assert stats["requests"] >= 150, "enough requests to fill many seconds"
    assert "429" not in stats["by_status"]
    # Counted by the sandbox on its own clock: never more than the ceiling + 1 in any
    # sliding second (the limiter starts at most the ceiling a second on the tap's clock,
    # and one more per 1.1 s for requests that arrive late), and so no 429 from a server
    # that allows 11. How fast the sync went is not this test's business (a busy machine
    # may be slower); that the limiter uses its whole budget is checked on a fake clock in
    # tests/test_limiter.py.
    assert max(stats["max_per_second"].values()) <= 11
    assert max(stats["max_accepted_per_second"].values()) <= 11
