"""singer-sdk's standard tap tests, run against a sandbox started for this module."""

from __future__ import annotations

from datetime import date

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_voluum.sandbox import Dataset, SandboxServer
from tap_voluum.tap import TapVoluum

# The standard test class needs its config when the module is imported.
_SERVER = SandboxServer(
    dataset=Dataset(seed=3, start=date(2026, 3, 1), days=6, campaigns=4), port=0
)
_SERVER.start()

CONFIG = {
    "access_id": _SERVER.access_id,
    "access_key": _SERVER.access_key,
    "api_url": _SERVER.url,
    "start_date": "2026-03-02T00:00:00Z",
    "end_date": "2026-03-05T00:00:00Z",
    "timezone": "Europe/Berlin",
    "custom_reports": [{"name": "country_os", "group_by": ["country", "os"]}],
}

TestTapVoluum = get_tap_test_class(
    TapVoluum,
    config=CONFIG,
    # The sandbox's entities were created and edited before start_date: no event log entries.
    suite_config=SuiteConfig(max_records_limit=200, ignore_no_records_for_streams=["event_log"]),
)
