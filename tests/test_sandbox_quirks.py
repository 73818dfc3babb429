"""Tests of the sandbox's quirk knobs (`voluum_sandbox/quirks.py`), against its HTTP API."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from tests.helpers import sandbox_api
from voluum_sandbox import KNOBS, Dataset, SandboxServer
from voluum_sandbox.quirks import QUIRK_KNOBS

if TYPE_CHECKING:
    from collections.abc import Iterator

    import requests

DAY = {"from": "2026-03-02", "to": "2026-03-03", "tz": "Etc/GMT"}


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset(seed=29, start=date(2026, 3, 1), days=4, campaigns=4)


@pytest.fixture
def server(ds: Dataset) -> Iterator[SandboxServer]:
    with SandboxServer(dataset=ds, port=0) as srv:
        yield srv


@pytest.fixture
def api(server: SandboxServer) -> requests.Session:
    return sandbox_api(server)


def _get(api: requests.Session, path: str, **params: object) -> requests.Response:
    return api.get(api.base + path, params=params, timeout=30)  # type: ignore[attr-defined]


def test_quirks_are_knobs_off_by_default(server: SandboxServer) -> None:
    assert set(QUIRK_KNOBS) <= set(KNOBS)
    quirks = server.quirks
    assert not quirks.odd_shapes and not quirks.twin_visits and not quirks.event_log_requires_to
    assert quirks.cents_off_day is None
    assert quirks.clock_behind == 0
    server.configure(cents_off_day=date(2026, 3, 2), clock_behind=60)
    assert server.quirks.cents_off_day == "2026-03-02"
    with pytest.raises(ValueError, match="lose_row_day"):
        server.configure(cents_off_day="March")


def test_odd_shapes_are_deterministic_and_keep_keys(
    server: SandboxServer, api: requests.Session
) -> None:
    plain = _get(api, "/report", groupBy=["campaign", "day"], **DAY).json()
    server.configure(odd_shapes=True)
    odd = _get(api, "/report", groupBy=["campaign", "day"], **DAY).json()
    again = _get(api, "/report", groupBy=["campaign", "day"], **DAY).json()
    assert odd == again
    assert odd["totals"] == plain["totals"], "totals are left as they were"
    seen = set()
    for before, after in zip(plain["rows"], odd["rows"], strict=True):
        key = after["campaignId"]
        assert (key["id"] if isinstance(key, dict) else key) == before["campaignId"]
        assert after["day"] == before["day"]
        for field, value in after.items():
            if value != before[field]:
                seen.add(type(value).__name__ if value != "" else "empty")
    assert {"dict", "NoneType", "empty"} <= seen
    for path, wrapper in (("/campaign", "campaigns"), ("/event-log", "eventLogEntries")):
        items = _get(api, path, includeDeleted="true").json()[wrapper]
        assert any(v is None or v == "" or isinstance(v, dict) for i in items for v in i.values())


def test_cents_off_day_changes_money_totals_only_on_that_day(
    server: SandboxServer, api: requests.Session
) -> None:
    plain = _get(api, "/report", groupBy=["campaign", "day"], **DAY).json()["totals"]
    server.configure(cents_off_day="2026-03-02")
    off = _get(api, "/report", groupBy=["campaign", "day"], **DAY).json()["totals"]
    assert round(off["revenue"] - plain["revenue"], 2) == 0.03
    assert round(off["cost"] - plain["cost"], 2) == 0.02
    assert {k: v for k, v in off.items() if k not in ("revenue", "cost", "profit")} == {
        k: v for k, v in plain.items() if k not in ("revenue", "cost", "profit")
    }
    other = {**DAY, "from": "2026-03-03", "to": "2026-03-04"}
    server.configure(cents_off_day=None)
    clean = _get(api, "/report", **other).json()["totals"]
    server.configure(cents_off_day="2026-03-02")
    assert _get(api, "/report", **other).json()["totals"] == clean


def test_twin_visits_serve_the_newest_visit_twice(
    server: SandboxServer, api: requests.Session, ds: Dataset
) -> None:
    campaign = next(c["id"] for c in ds.entities("campaign") if not c.get("deleted"))
    plain = _get(api, f"/report/live/visits/{campaign}", limit=1000).json()["rows"]
    server.configure(twin_visits=True)
    rows = _get(api, f"/report/live/visits/{campaign}", limit=1000).json()["rows"]
    assert rows[0] == rows[1] == plain[0]
    assert rows[2:] == plain[1:]
    clicks = _get(api, f"/report/live/clicks/{campaign}", limit=1000).json()["rows"]
    assert len({r["clickId"] for r in clicks}) == len(clicks), "clicks are untouched"


def test_clock_behind_and_a_missing_to(server: SandboxServer, api: requests.Session) -> None:
    soon = (datetime.now(timezone.utc) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _get(api, "/event-log", **{"from": soon}).status_code == 200
    server.configure(clock_behind=3600)
    refused = _get(api, "/event-log", **{"from": soon})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "BAD_REQUEST"
    assert "'to' must not be before 'from'" in refused.json()["error"]["description"]
    server.configure(clock_behind=0, event_log_requires_to=True)
    missing = _get(api, "/event-log", **{"from": "2026-03-01"})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "PARAMETER_MISSING"
    assert _get(api, "/event-log", **{"from": "2026-03-01", "to": "2026-03-02"}).ok
