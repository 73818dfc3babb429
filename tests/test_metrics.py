"""The SDK's metrics still count what windowed streams do."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tests.conftest import config_for
from tests.helpers import run_tap

if TYPE_CHECKING:
    import pytest

    from voluum_sandbox import SandboxServer


def _metrics(caplog: pytest.LogCaptureFixture, name: str) -> list[dict]:
    found = []
    for record in caplog.records:
        message = record.getMessage()
        if message.startswith("METRIC: "):
            metric = json.loads(message[len("METRIC: ") :])
            if metric["metric"] == name:
                found.append(metric)
    return found


def test_report_requests_are_counted_in_the_sdk_metrics(
    fresh_sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    config = config_for(fresh_sandbox, page_size=7)
    fresh_sandbox.clear_requests()
    result = run_tap(config, {"campaign_report", "conversions"})
    for stream, path in (("campaign_report", "/report"), ("conversions", "/report/conversions")):
        counted = sum(
            m["value"]
            for m in _metrics(caplog, "http_request_count")
            if m["tags"]["stream"] == stream
        )
        served = [r for r in fresh_sandbox.requests if r["path"] == path and r["status"] == 200]
        assert counted == len(served) > 7, stream  # paged: more than one request a window
        records = sum(
            m["value"] for m in _metrics(caplog, "record_count") if m["tags"]["stream"] == stream
        )
        assert records == len(result.records[stream])
