"""What the tap settled on for this Voluum, in one block (issue #25 §3).

`--test` and the end of every sync print, per account, the readings in use: the groupBy
spellings, sort, the page size served, columns left out, the widest span, the event log's
time format and the restatement horizon; a line each, no secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tap_voluum.settled import HEADER
from tests.helpers import run_cli
from tests.test_accounts import NAMES, agency, agency_config, datasets  # noqa: F401

if TYPE_CHECKING:
    from pathlib import Path

    from voluum_sandbox import SandboxServer

DIALECTS = ["groupby_ids", "page_cap", "sort_no_ids", "evlog_epoch_only"]


def block(stderr: str) -> list[str]:
    """The settled block's lines (header first), as the log shows them (prefix cut)."""
    raw = stderr.splitlines()
    start = next(i for i, line in enumerate(raw) if HEADER in line)
    column = raw[start].index(HEADER)
    found = [HEADER]
    for line in raw[start + 1 :]:
        text = line[column:]
        if not text.startswith("  "):
            break
        found.append(text)
    return found


def no_secret(text: str, server: SandboxServer) -> None:
    for account in server.accounts:
        assert account.access_key not in text
    assert "cwauth-token" not in text.lower()


@pytest.mark.parametrize("mode", ["--test", "sync"])
def test_the_block_names_what_each_account_settled_on(
    agency: SandboxServer,  # noqa: F811
    tmp_path: Path,
    mode: str,
) -> None:
    agency.configure(dialects=DIALECTS)
    config = agency_config(agency, page_size=200, restatement_days=None)  # the default, 90
    if mode == "--test":
        result = run_cli(config, tmp_path, args=("--test",))
    else:
        streams = {"campaign_hourly_report", "traffic_source_report", "event_log"}
        result = run_cli(config, tmp_path, streams=streams)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = block(result.stderr)
    text = "\n".join(lines)
    assert lines[0].endswith(HEADER)
    assert "traffic-source=trafficSourceId" in text  # the spelling groupby_ids accepts
    assert "sort: refused for" in text
    assert "page size: 50 rows served (200 asked)" in text
    assert "event log: from/to as epoch" in text
    for name in NAMES:
        account_lines = [line for line in lines if line.strip().startswith(f"{name}:")]
        assert len(account_lines) == 1, f"one line for {name}"
        if mode == "sync":
            assert "restatement horizon 20" in account_lines[0]
            assert "past days restated since the last sync" in account_lines[0]
    no_secret(result.stderr, agency)


def test_restatement_off_is_said(agency: SandboxServer, tmp_path: Path) -> None:  # noqa: F811
    config = agency_config(agency, restatement_days=0)
    result = run_cli(config, tmp_path, streams={"campaign_report"})
    assert result.returncode == 0, result.stderr[-2000:]
    text = "\n".join(block(result.stderr))
    assert text.count("restated days not checked (restatement_days: 0)") == len(NAMES)
    checks = [r for r in agency.requests if r["query"].get("groupBy") == ["day"]]
    assert checks == [], "no check request"
