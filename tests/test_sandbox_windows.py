"""Multi-day report windows on the sandbox: campaign x day x hour, 31 days, conversions.

``voluum-api.md`` §10: ``groupBy=day&groupBy=hour`` over a multi-day window is one row per
date-hour; clients also read 31-day windows in one call.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from tests.helpers import sandbox_api
from tests.truth import AMOUNTS, COUNTS, assert_conversions_match, assert_rows_match, cents
from voluum_sandbox import Dataset, SandboxServer

NY = "America/New_York"
DST_DAY = "2026-03-08"  # New York skips 02:00-03:00


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset(seed=17, start=date(2026, 2, 27), days=40, campaigns=6)


@pytest.fixture(scope="module")
def srv(ds: Dataset):
    with SandboxServer(ds, rate_limit=None) as server:
        yield server


@pytest.fixture(scope="module")
def api(srv: SandboxServer) -> requests.Session:
    return sandbox_api(srv)


def ok(api: requests.Session, path: str, **params: Any) -> dict:
    r = api.get(api.base + path, params=params, timeout=120)  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    return r.json()


def all_rows(api: requests.Session, path: str, page: int, **params: Any) -> tuple[list, dict]:
    """Every row of a paged endpoint, ``page`` rows at a time; also the first answer."""
    first = ok(api, path, **params, limit=page, offset=0)
    rows = list(first["rows"])
    while len(rows) < first["totalRows"]:
        rows.extend(ok(api, path, **params, limit=page, offset=len(rows))["rows"])
    assert len(rows) == first["totalRows"]
    return rows, first


def assert_totals_are_the_sum(totals: dict, rows: list[dict]) -> None:
    for metric in COUNTS:
        assert totals[metric] == sum(r[metric] for r in rows), metric
    for amount in AMOUNTS:
        assert cents(totals[amount]) == sum(cents(r[amount]) for r in rows), amount


def local_hours(start: date, days: int) -> set[tuple[str, int]]:
    """Every (date, hour) wall-clock pair that exists in New York over ``days`` days."""
    out = set()
    for d in range(days):
        day = start + timedelta(days=d)
        for h in range(24):
            if not (day.isoformat() == DST_DAY and h == 2):
                out.add((day.isoformat(), h))
    return out


@pytest.mark.parametrize("tz", [NY, "Etc/GMT"])
def test_campaign_day_hour_over_ten_days(api: requests.Session, ds: Dataset, tz: str) -> None:
    group_by = ["campaign", "day", "hour"]
    window = {"from": "2026-03-02", "to": "2026-03-12", "tz": tz, "include": "ALL"}
    rows, answer = all_rows(api, "/report", 1000, **window, groupBy=group_by)
    assert all({"campaignId", "day", "hour"} <= set(r) for r in rows)
    assert all(isinstance(r["hour"], int) and 0 <= r["hour"] <= 23 for r in rows)
    keys = Counter((r["campaignId"], r["day"], r["hour"]) for r in rows)
    assert max(keys.values()) == 1, "one row per campaign x date x hour"
    truth = ds.truth_rows(group_by, datetime(2026, 3, 2), datetime(2026, 3, 12), tz, include="ALL")
    assert_rows_match(rows, truth, lambda r: Dataset.row_key(r, group_by))
    assert_totals_are_the_sum(answer["totals"], rows)
    pairs = {(r["day"], r["hour"]) for r in rows}
    if tz == NY:
        assert pairs == local_hours(date(2026, 3, 2), 10), "the DST day has 23 hours"
        assert len({h for d, h in pairs if d == DST_DAY}) == 23
    else:
        assert len(pairs) == 240
    assert {d for d, _ in pairs} == {
        (date(2026, 3, 2) + timedelta(days=i)).isoformat() for i in range(10)
    }
    # Each campaign's rows of a day add up to its campaign x day row.
    daily = ok(api, "/report", **window, groupBy=["campaign", "day"], limit=1000)
    by_day: dict[tuple, Counter] = {}
    for r in rows:
        by_day.setdefault((r["campaignId"], r["day"]), Counter())["visits"] += r["visits"]
    assert {(r["campaignId"], r["day"]): r["visits"] for r in daily["rows"]} == {
        k: c["visits"] for k, c in by_day.items()
    }


def test_day_hour_without_campaign(api: requests.Session, ds: Dataset) -> None:
    window = {"from": "2026-03-02", "to": "2026-03-12", "tz": NY, "include": "ALL"}
    rows, answer = all_rows(api, "/report", 100, **window, groupBy=["day", "hour"])
    assert {(r["day"], r["hour"]) for r in rows} == local_hours(date(2026, 3, 2), 10)
    assert len(rows) == 239
    assert_totals_are_the_sum(answer["totals"], rows)
    totals = ds.truth_totals(datetime(2026, 3, 2), datetime(2026, 3, 12), NY)
    assert answer["totals"]["visits"] == totals["visits"]


@pytest.mark.parametrize("tz", [NY, "Etc/GMT"])
def test_campaign_day_over_31_days(api: requests.Session, ds: Dataset, tz: str) -> None:
    group_by = ["campaign", "day"]
    start, end = datetime(2026, 3, 1), datetime(2026, 4, 1)
    window = {"from": "2026-03-01", "to": "2026-04-01", "tz": tz, "include": "ALL"}
    rows, answer = all_rows(api, "/report", 50, **window, groupBy=group_by)
    keys = Counter((r["campaignId"], r["day"]) for r in rows)
    assert max(keys.values()) == 1, "one row per campaign-day"
    assert len({r["day"] for r in rows}) == 31
    assert len({r["campaignId"] for r in rows}) == 6
    truth = ds.truth_rows(group_by, start, end, tz, include="ALL")
    assert_rows_match(rows, truth, lambda r: Dataset.row_key(r, group_by))
    assert_totals_are_the_sum(answer["totals"], rows)
    one_call = ok(api, "/report", **window, groupBy=group_by, limit=100_000)
    assert one_call["rows"] == rows and one_call["totalRows"] == len(rows) <= 6 * 31


def test_conversions_over_31_days(api: requests.Session, ds: Dataset) -> None:
    start, end = datetime(2026, 3, 1), datetime(2026, 4, 1)
    window = {"from": "2026-03-01", "to": "2026-04-01", "tz": NY}
    rows, answer = all_rows(api, "/report/conversions", 1000, **window)
    assert answer["totalRows"] == len(rows) > 1000
    assert_conversions_match(rows, ds, start, end, NY)
    expected = [c["clickId"] for c in ds.conversions_between(start, end, NY)]
    assert [r["clickId"] for r in rows] == expected, "postback order across pages"
    revenue = sum((Decimal(str(r["revenue"])) for r in rows), Decimal(0))
    assert revenue * 100 == sum(c["revenue_cents"] for c in ds.conversions_between(start, end, NY))


def test_day_hour_across_the_autumn_change() -> None:
    """2026-11-01 has 25 New York hours: its two 01:00 hours make one row."""
    fall = Dataset(seed=19, start=date(2026, 10, 30), days=4, campaigns=2)
    group_by = ["campaign", "day", "hour"]
    window = {"from": "2026-10-31", "to": "2026-11-03", "tz": NY, "include": "ALL"}
    with SandboxServer(fall, rate_limit=None) as server:
        rows, answer = all_rows(sandbox_api(server), "/report", 1000, **window, groupBy=group_by)
    truth = fall.truth_rows(
        group_by, datetime(2026, 10, 31), datetime(2026, 11, 3), NY, include="ALL"
    )
    assert_rows_match(rows, truth, lambda r: Dataset.row_key(r, group_by))
    assert_totals_are_the_sum(answer["totals"], rows)
    assert {r["hour"] for r in rows if r["day"] == "2026-11-01"} == set(range(24))
    one_am = sum(r["visits"] for r in rows if (r["day"], r["hour"]) == ("2026-11-01", 1))
    two_am = sum(r["visits"] for r in rows if (r["day"], r["hour"]) == ("2026-11-01", 2))
    assert one_am > two_am, "two hours of traffic in the 01:00 rows"
