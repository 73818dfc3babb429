"""The sandbox clock and a Voluum that restates its past, over HTTP against a real SandboxServer.

Late postbacks, uploads, integrated cost replacing estimates and manual cost updates are each
invisible until the clock passes them; ``/report`` (every mode, currency, zone), the conversion
log and the truth helpers agree at every clock position; the plan is deterministic by seed and
off by default.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.helpers import sandbox_api
from voluum_sandbox import Dataset, SandboxServer
from voluum_sandbox.cli import parse_args

if TYPE_CHECKING:
    from collections.abc import Iterator

START = date(2026, 1, 1)
DAYS = 90
WINDOW = {"from": "2026-01-01", "to": "2026-04-15", "include": "ALL", "limit": 100000}
UTC = timezone.utc


def at(ts: int) -> datetime:
    """A naive UTC datetime of epoch seconds."""
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


@pytest.fixture(scope="module")
def srv() -> Iterator[SandboxServer]:
    """A sandbox over a 90-day dataset of 12 campaigns that restates its past."""
    ds = Dataset(seed=11, start=START, days=DAYS, campaigns=12, restatements=True)
    with SandboxServer(ds, rate_limit=None, now="2026-03-01T00:00:00Z") as server:
        yield server


@pytest.fixture(scope="module")
def api(srv: SandboxServer) -> requests.Session:
    return sandbox_api(srv)


def get(api: requests.Session, path: str, **params: Any) -> dict:
    r = api.get(api.base + path, params={**WINDOW, **params}, timeout=60)  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    return r.json()


def by_day(api: requests.Session, **params: Any) -> dict[str, dict]:
    """``/report`` grouped by campaign and day: ``(campaignId, day) -> row``."""
    rows = get(api, "/report", groupBy=["campaign", "day"], **params)["rows"]
    return {(r["campaignId"], r["day"]): r for r in rows}


def move(srv: SandboxServer, api: requests.Session, when: datetime | str | None) -> None:
    """Move the clock through the admin API."""
    value = when.isoformat() if isinstance(when, datetime) else when
    r = api.post(api.base + "/__sandbox__/configure", json={"now": value}, timeout=10)  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text


def first_item(srv: SandboxServer, kind: str, test: Any = None) -> dict:
    """The first plan item of ``kind`` after day 30 of the data (and passing ``test``)."""
    plan = srv.dataset.restatements
    assert plan is not None
    low = srv.dataset.start_ts + 30 * 86400
    return next(
        i for i in plan.items if i["kind"] == kind and i["at"] > low and (test is None or test(i))
    )


def test_off_by_default_changes_nothing() -> None:
    plain = Dataset(seed=3, start=START, days=5, campaigns=4)
    off = Dataset(seed=3, start=START, days=5, campaigns=4, restatements=False)
    assert off.restatements is None and off.now is None and off.visible_before() is None
    assert (off.ev_cost, off.cv_post, off.cv_rev) == (plain.ev_cost, plain.cv_post, plain.cv_rev)
    with SandboxServer(off, rate_limit=None) as server:
        s = sandbox_api(server)
        window = {"from": "2026-01-01", "to": "2026-01-06"}
        body = get(s, "/report", groupBy=["campaign", "day"], **window)
        truth = plain.truth_totals(datetime(2026, 1, 1), datetime(2026, 1, 6))
    assert server.now is None
    assert body["totals"]["visits"] == truth["visits"] == sum(plain.ev_visits)
    assert round(body["totals"]["cost"] * 100) == truth["cost_cents"] == sum(plain.ev_cost)


def test_late_postback_visible_only_after_its_postback(
    srv: SandboxServer, api: requests.Session
) -> None:
    item = first_item(srv, "late_postback", lambda i: i["at"] - i["visit_ts"] > 5 * 86400)
    visit_day = at(item["visit_ts"]).date().isoformat()
    post_day = at(item["at"]).date().isoformat()
    key_v, key_p = (item["campaignId"], visit_day), (item["campaignId"], post_day)
    move(srv, api, at(item["at"] - 1))
    before_v = by_day(api)[key_v]
    before_p = by_day(api, conversionTimeMode="CONVERSION").get(key_p, {"conversions": 0})
    log = get(api, "/report/conversions", sort="clickId")["rows"]
    assert item["clickId"] not in {r["clickId"] for r in log}
    move(srv, api, at(item["at"]))
    after_v = by_day(api)[key_v]
    after_p = by_day(api, conversionTimeMode="CONVERSION")[key_p]
    # VISIT: on the visit's day; CONVERSION: on the postback's day (nothing else landed here).
    assert after_v["conversions"] == before_v["conversions"] + 1
    assert round((after_v["revenue"] - before_v["revenue"]) * 100) == item["revenue_cents"]
    assert after_p["conversions"] == before_p["conversions"] + 1
    log = get(api, "/report/conversions")["rows"]
    mine = [r for r in log if r["clickId"] == item["clickId"]]
    stamp = datetime.strptime(mine[0]["postbackTimestamp"], "%Y-%m-%d %I:%M:%S %p")
    assert len(mine) == 1 and stamp == at(item["at"])


def test_upload_on_an_old_click(srv: SandboxServer, api: requests.Session) -> None:
    item = first_item(srv, "upload", lambda i: i["at"] - i["visit_ts"] > 28 * 86400)
    key = (item["campaignId"], at(item["visit_ts"]).date().isoformat())
    move(srv, api, at(item["at"] - 1))
    before = by_day(api)[key]
    move(srv, api, at(item["at"]))
    after = by_day(api)[key]
    assert after["conversions"] == before["conversions"] + 1


def test_integrated_cost_replaces_the_estimate_when_it_lands(
    srv: SandboxServer, api: requests.Session
) -> None:
    item = first_item(srv, "integrated_cost", lambda i: i["cost_cents"] != i["before_cents"])
    key = (item["campaignId"], item["days"][0])
    move(srv, api, at(item["at"] - 1))
    assert round(by_day(api)[key]["cost"] * 100) == item["before_cents"]
    move(srv, api, at(item["at"]))
    assert round(by_day(api)[key]["cost"] * 100) == item["cost_cents"]


def test_manual_cost_update_sets_the_range(srv: SandboxServer, api: requests.Session) -> None:
    item = first_item(srv, "manual_cost", lambda i: len(i["days"]) > 1)
    move(srv, api, at(item["at"] - 1))
    rows = by_day(api)
    before = sum(round(rows[(item["campaignId"], d)]["cost"] * 100) for d in item["days"])
    move(srv, api, at(item["at"]))
    rows = by_day(api)
    after = sum(round(rows[(item["campaignId"], d)]["cost"] * 100) for d in item["days"])
    assert (before, after) == (item["before_cents"], item["cost_cents"])
    assert before != after


@pytest.mark.parametrize(
    ("group_by", "params"),
    [
        (["day"], {}),
        (["campaign", "day"], {"conversionTimeMode": "CONVERSION"}),
        (["campaign", "day", "hour"], {"tz": "America/New_York", "currency": "GBP"}),
        (["traffic-source", "country"], {"currency": "EUR"}),
    ],
)
def test_report_equals_truth_at_every_clock_position(
    srv: SandboxServer, api: requests.Session, group_by: list[str], params: dict[str, str]
) -> None:
    ds = srv.dataset
    mode = params.get("conversionTimeMode", "VISIT")
    tz, currency = params.get("tz", "Etc/GMT"), params.get("currency", "USD")
    for day in range(55, 92, 9):
        move(srv, api, datetime(2026, 1, 1, 7) + timedelta(days=day))
        rows = get(api, "/report", groupBy=group_by, **params)["rows"]
        got = {ds.row_key(r, group_by): r for r in rows}
        truth = ds.truth_rows(
            group_by, datetime(2026, 1, 1), datetime(2026, 4, 15), tz, mode, include="ALL",
            currency=currency,
        )  # fmt: skip
        assert set(got) == set(truth)
        for key, want in truth.items():
            row = got[key]
            assert (row["visits"], row["conversions"]) == (want["visits"], want["conversions"])
            assert round(row["cost"] * 100) == want["cost_cents"], key
            assert round(row["revenue"] * 100) == want["revenue_cents"], key


def test_conversion_log_equals_truth_and_the_clock_goes_back(
    srv: SandboxServer, api: requests.Session
) -> None:
    ds = srv.dataset
    move(srv, api, "2026-03-20T12:00:00Z")
    later = get(api, "/report/conversions")
    truth = ds.conversions_between(datetime(2026, 1, 1), datetime(2026, 4, 15))
    assert [r["clickId"] for r in later["rows"]] == [t["clickId"] for t in truth]
    assert max(t["postback_ts"] for t in truth) <= datetime(2026, 3, 20, 12, tzinfo=UTC).timestamp()
    late_totals = get(api, "/report", groupBy="day")["totals"]
    move(srv, api, "2026-03-01T00:00:00Z")
    earlier = get(api, "/report/conversions")
    assert earlier["totalRows"] < later["totalRows"]
    back = get(api, "/report", groupBy="day")["totals"]
    assert back["visits"] < late_totals["visits"]
    assert back["visits"] == ds.truth_totals(datetime(2026, 1, 1), datetime(2026, 3, 1))["visits"]
    move(srv, api, None)  # the real clock: everything generated has happened
    assert srv.now is None
    assert get(api, "/report", groupBy="day")["totals"]["visits"] == sum(ds.ev_visits)


def test_deterministic_by_seed_and_density() -> None:
    one = Dataset(seed=11, start=START, days=DAYS, campaigns=12, restatements=True)
    two = Dataset(seed=11, start=START, days=DAYS, campaigns=12, restatements=True)
    other = Dataset(seed=12, start=START, days=DAYS, campaigns=12, restatements=True)
    assert one.restatements is not None and two.restatements is not None
    assert one.restatements.items == two.restatements.items
    assert (one.cv_post, one.cv_rev) == (two.cv_post, two.cv_rev)
    assert other.restatements is not None and other.restatements.items != one.restatements.items
    # A daily clock: some past days change each day, not all of the last 28.
    changed_per_day, old = [], 0
    previous = None
    for day in range(60, 75):
        now = datetime(2026, 1, 1) + timedelta(days=day)
        one.set_now(now)
        rows = one.truth_rows(["day"], datetime(2026, 1, 1), now - timedelta(days=1))
        if previous is not None:
            changed = [k for k in rows if k in previous and rows[k] != previous[k]]
            changed_per_day.append(len(changed))
            old += sum(1 for (d,) in changed if (now - datetime.fromisoformat(d)).days > 28)
        previous = rows
    assert all(3 <= n <= 40 for n in changed_per_day), changed_per_day
    assert sum(changed_per_day) / len(changed_per_day) < 28 * 0.6
    assert old > 0  # some changes are older than a fixed 28-day re-read reaches


def test_knob_in_python_and_cli(srv: SandboxServer) -> None:
    srv.configure(now=datetime(2026, 2, 2, 3, 4, 5))
    assert srv.now == datetime(2026, 2, 2, 3, 4, 5, tzinfo=UTC)
    assert srv.dataset.visible_before() == int(srv.now.timestamp()) + 1
    with pytest.raises(ValueError, match="now"):
        srv.configure(now="yesterday")
    assert srv.now == datetime(2026, 2, 2, 3, 4, 5, tzinfo=UTC)
    args = parse_args(["--now", "2026-03-01T00:00:00Z", "--restatements", "1"])
    assert (args.now, args.restatements) == ("2026-03-01T00:00:00Z", 1.0)
    with pytest.raises(SystemExit):
        parse_args(["--now", "soon"])
