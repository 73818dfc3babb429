"""The sandbox's late-data control and truth settings, over HTTP.

After ``add_late_data`` (admin endpoint or Python API), ``/report``, ``/report/conversions``, the
live endpoints and ``/event-log`` serve the additions, agree with the truth helpers, and no cache
answers with the data from before.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
import requests

from voluum_sandbox import Dataset, SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator

START = date(2026, 3, 1)
DAYS = 6
AT = "2026-03-05T10:20:30.250Z"
AT_MS = int(datetime(2026, 3, 5, 10, 20, 30, 250000, tzinfo=timezone.utc).timestamp() * 1000)
WHOLE = {"from": "2026-03-01", "to": "2026-03-09", "include": "ALL"}


def make_dataset() -> Dataset:
    return Dataset(seed=5, start=START, days=DAYS, campaigns=8)


class Api:
    """A logged-in client of one sandbox."""

    def __init__(self, srv: SandboxServer) -> None:
        self.srv = srv
        self.session = requests.Session()
        r = self.session.post(
            srv.url + "/auth/access/session",
            json={"accessId": srv.access_id, "accessKey": srv.access_key},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        self.session.headers["cwauth-token"] = r.json()["token"]

    def get(self, path: str, **params: Any) -> dict:
        r = self.session.get(self.srv.url + path, params=params, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    def add_data(self, **body: Any) -> requests.Response:
        return self.session.post(self.srv.url + "/__sandbox__/add-data", json=body, timeout=60)

    def added(self, **body: Any) -> dict:
        r = self.add_data(**body)
        assert r.status_code == 200, r.text
        return r.json()

    def totals(self, **params: Any) -> dict:
        return self.get("/report", **{**WHOLE, **params})["totals"]

    def rows(self, **params: Any) -> list[dict]:
        return self.get("/report", **{**WHOLE, "limit": 100000, **params})["rows"]

    def conversions(self, **params: Any) -> list[dict]:
        body = self.get("/report/conversions", **{**WHOLE, "limit": 100000, **params})
        assert body["totalRows"] == len(body["rows"])
        return body["rows"]


@pytest.fixture(scope="module")
def fixed() -> Iterator[Api]:
    """A sandbox whose data this module never changes."""
    with SandboxServer(make_dataset(), rate_limit=None) as srv:
        yield Api(srv)


@pytest.fixture
def api() -> Iterator[Api]:
    """A sandbox of its own, on a dataset the test may change."""
    with SandboxServer(make_dataset(), rate_limit=None) as srv:
        yield Api(srv)


def cents(value: float) -> int:
    amount = Decimal(str(value)) * 100
    assert amount == amount.to_integral_value()
    return int(amount)


def money(totals: dict) -> dict[str, int]:
    return {
        "visits": totals["visits"],
        "uniqueVisits": totals["uniqueVisits"],
        "clicks": totals["clicks"],
        "conversions": totals["conversions"],
        "cost_cents": cents(totals["cost"]),
        "revenue_cents": cents(totals["revenue"]),
        "impressions": totals["impressions"],
    }


def utc_day(ts: int, tz: str = "Etc/GMT") -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- truth settings


@pytest.mark.parametrize("currency", ["USD", "EUR", "GBP"])
@pytest.mark.parametrize("mode", ["VISIT", "CONVERSION"])
@pytest.mark.parametrize("workspace", [None, 0, 1])
def test_truth_rows_follow_currency_workspaces_and_mode(
    fixed: Api, currency: str, mode: str, workspace: int | None
) -> None:
    ds = fixed.srv.dataset
    workspaces = None if workspace is None else [ds.workspaces[workspace]["id"]]
    groups = ["campaign", "day"]
    params: dict[str, Any] = {
        "from": "2026-03-02T05",
        "to": "2026-03-06",
        "tz": "America/New_York",
        "groupBy": groups,
        "conversionTimeMode": mode,
        "currency": currency,
        "include": "ALL",
    }
    if workspaces:
        params["workspaces"] = workspaces
    rows = fixed.rows(**params)
    truth = ds.truth_rows(
        groups,
        datetime(2026, 3, 2, 5),
        datetime(2026, 3, 6),
        "America/New_York",
        mode,
        include="ALL",
        currency=currency,
        workspaces=workspaces,
    )
    assert rows and len(rows) == len(truth)
    for row in rows:
        expected = truth[Dataset.row_key(row, groups)]
        assert row["visits"] == expected["visits"]
        assert row["conversions"] == expected["conversions"]
        assert cents(row["cost"]) == expected["cost_cents"]
        assert cents(row["revenue"]) == expected["revenue_cents"]
        for n in range(1, 6):
            assert row[f"customConversions{n}"] == expected[f"customConversions{n}"]
            assert cents(row[f"customRevenue{n}"]) == expected[f"customRevenue{n}_cents"]
    totals = ds.truth_totals(
        datetime(2026, 3, 2, 5),
        datetime(2026, 3, 6),
        "America/New_York",
        mode,
        currency=currency,
        workspaces=workspaces,
    )
    served = money(fixed.totals(**{**params, "groupBy": "campaign"}))
    assert served == {k: totals[k] for k in served}
    if workspace == 1:  # the second workspace holds only some of the campaigns
        assert {r["campaignWorkspaceId"] for r in rows} == {ds.workspaces[1]["id"]}


def test_truth_converts_each_amount_rounding_half_up(fixed: Api) -> None:
    ds = fixed.srv.dataset
    start, end = datetime(2026, 3, 1), datetime(2026, 3, 7)
    usd = ds.truth_rows(["campaign", "day"], start, end, include="ALL")
    eur = ds.truth_rows(["campaign", "day"], start, end, include="ALL", currency="eur")
    assert usd.keys() == eur.keys()
    # Converting per amount differs from converting the sum somewhere: the truth must convert
    # per event cost and per conversion revenue, as the report does.
    assert any(
        round(Decimal(u["cost_cents"]) * Decimal("0.92")) != e["cost_cents"]
        for u, e in zip(usd.values(), eur.values(), strict=True)
    ) or any(
        round(Decimal(u["revenue_cents"]) * Decimal("0.92")) != e["revenue_cents"]
        for u, e in zip(usd.values(), eur.values(), strict=True)
    )
    with pytest.raises(ValueError, match="currency"):
        ds.truth_totals(start, end, currency="JPY")
    with pytest.raises(ValueError, match="conversion_time_mode"):
        ds.truth_totals(start, end, conversion_time_mode="CLICK")
    assert ds.truth_totals(start, end, workspaces=["no-such-workspace"])["visits"] == 0


# --------------------------------------------------------------------------- late data


def test_report_totals_change_by_exactly_the_added_amounts(api: Api) -> None:
    ds = api.srv.dataset
    before = money(api.totals())
    before_conv = money(api.totals(conversionTimeMode="CONVERSION"))
    by_day_before = {r["day"]: r for r in api.rows(groupBy="day")}
    added = api.added(
        at=AT, visits=9, conversions=5, seed=3, until="2026-03-05T18:00:00Z", max_click_age=86400
    )
    assert len(added["conversions"]) == 5
    assert sum(v["visits"] for v in added["visits"]) == 9
    delta = added["totals"]
    after = money(api.totals())  # the same query as before: no stale cached answer
    for key in ("visits", "uniqueVisits", "clicks", "conversions", "revenue_cents", "cost_cents"):
        assert after[key] == before[key] + delta[key], key
    assert delta["conversions"] == 5 and delta["visits"] == 9 and delta["revenue_cents"] > 0
    truth = ds.truth_totals(datetime(2026, 3, 1), datetime(2026, 3, 9))
    assert {k: truth[k] for k in after} == after
    after_conv = money(api.totals(conversionTimeMode="CONVERSION"))
    assert after_conv["conversions"] == before_conv["conversions"] + 5
    assert after_conv["revenue_cents"] == before_conv["revenue_cents"] + delta["revenue_cents"]

    # Late conversions count on the day of their click (VISIT mode), visits on their own day.
    expected: dict[str, Counter] = {}
    for visit in added["visits"]:
        day = expected.setdefault(utc_day(visit["ts"]), Counter())
        day["visits"] += visit["visits"]
        day["cost_cents"] += visit["cost_cents"]
    for conv in added["conversions"]:
        day = expected.setdefault(utc_day(conv["visit_ts"]), Counter())
        day["conversions"] += 1
        day["revenue_cents"] += conv["revenue_cents"]
        day["cost_cents"] += conv["cost_cents"]
    assert any(utc_day(c["visit_ts"]) != "2026-03-05" for c in added["conversions"]), (
        "some land on an earlier day than their postback"
    )
    for row in api.rows(groupBy="day"):
        old = by_day_before[row["day"]]
        change = expected.get(row["day"], Counter())
        assert row["visits"] - old["visits"] == change["visits"], row["day"]
        assert row["conversions"] - old["conversions"] == change["conversions"], row["day"]
        assert cents(row["revenue"]) - cents(old["revenue"]) == change["revenue_cents"]
        assert cents(row["cost"]) - cents(old["cost"]) == change["cost_cents"], row["day"]


def test_currency_reports_are_not_stale(api: Api) -> None:
    ds = api.srv.dataset
    params = {"currency": "EUR", "groupBy": ["campaign", "day"], "tz": "Europe/Berlin"}
    api.rows(**params)  # fills the report cache and the EUR columns
    api.srv.dataset.add_late_data(AT, visits=7, conversions=4, seed=8)  # the Python API
    rows = api.rows(**params)
    truth = ds.truth_rows(
        ["campaign", "day"],
        datetime(2026, 3, 1),
        datetime(2026, 3, 9),
        "Europe/Berlin",
        include="ALL",
        currency="EUR",
    )
    assert len(rows) == len(truth)
    for row in rows:
        expected = truth[Dataset.row_key(row, ["campaign", "day"])]
        assert (row["visits"], row["conversions"]) == (expected["visits"], expected["conversions"])
        assert cents(row["cost"]) == expected["cost_cents"]
        assert cents(row["revenue"]) == expected["revenue_cents"]


def test_new_conversions_are_served_by_postback_time(api: Api) -> None:
    ds = api.srv.dataset
    old = api.conversions()
    added = api.added(at=AT, conversions=8, seed=1, until="2026-03-06T03:00:00Z")
    rows = api.conversions()
    assert len(rows) == len(old) + 8
    key = ("clickId", "conversionType", "postbackTimestamp", "visitTimestamp", "revenue")
    served = Counter(tuple(r[k] for k in key) for r in rows)
    assert not Counter(tuple(r[k] for k in key) for r in old) - served, "old rows stay as they were"
    truth = ds.conversions_between(datetime(2026, 3, 1), datetime(2026, 3, 9))
    assert [(r["clickId"], r["conversionType"]) for r in rows] == [
        (t["clickId"], t["conversionType"]) for t in truth
    ]
    by_key = {(r["clickId"], r["conversionType"]): r for r in rows}
    postbacks = sorted(c["postback_ts"] for c in added["conversions"])
    assert postbacks[0] == AT_MS // 1000, "the first lands in at's very second"
    assert all(AT_MS // 1000 <= p < AT_MS // 1000 + 17 * 3600 for p in postbacks)
    for conv in added["conversions"]:
        row = by_key[(conv["clickId"], conv["conversionType"])]
        stamp = datetime.fromtimestamp(conv["postback_ts"], timezone.utc)
        assert row["postbackTimestamp"] == stamp.strftime("%Y-%m-%d %I:%M:%S %p")
        assert cents(row["revenue"]) == conv["revenue_cents"]
        assert row["campaignId"] == conv["campaignId"]
        assert conv["postback_ts"] - conv["visit_ts"] >= 30
    # A window on the postback hour holds them; with tz the stamps are local wall clock.
    hour_end = (AT_MS // 3_600_000 + 1) * 3600
    in_hour = {c["clickId"] for c in added["conversions"] if c["postback_ts"] < hour_end}
    assert len(in_hour) >= 2
    hour = api.conversions(**{"from": "2026-03-05T10", "to": "2026-03-05T11"})
    assert in_hour <= {r["clickId"] for r in hour}


def test_new_visits_appear_in_the_live_endpoints(api: Api) -> None:
    ds = api.srv.dataset
    campaign = next(c["id"] for c in ds.entities("campaign") if not c["deleted"])
    near_end = "2026-03-06T23:30:00Z"
    added = api.added(at=near_end, visits=10, seed=4, campaign_ids=[campaign])
    assert {v["campaignId"] for v in added["visits"]} == {campaign}
    visits = api.get(f"/report/live/visits/{campaign}", limit=1000)["rows"]
    clicks = api.get(f"/report/live/clicks/{campaign}", limit=1000)["rows"]
    new_visits = [i for v in added["visits"] for i in v["visitIds"]]
    new_clicks = [i for v in added["visits"] for i in v["clickIds"]]
    assert len(new_visits) == 10 and new_clicks
    served = {r["clickId"]: r for r in visits}
    assert set(new_visits) <= served.keys()
    assert set(new_clicks) <= {r["clickId"] for r in clicks}
    for v in added["visits"]:
        stamp = datetime.fromtimestamp(v["ts"], timezone.utc).strftime("%Y-%m-%d %I:%M:%S %p")
        assert {served[i]["timestamp"] for i in v["visitIds"]} == {stamp}
    # Newest first, the additions among the rest by their time.
    stamps = [datetime.strptime(r["timestamp"], "%Y-%m-%d %I:%M:%S %p") for r in visits]
    assert stamps == sorted(stamps, reverse=True)
    assert len(visits) == len({r["clickId"] for r in visits})


def test_new_event_log_entries_appear(api: Api) -> None:
    ds = api.srv.dataset
    before = api.get("/event-log", limit=10000, direction="ASC")["eventLogEntries"]
    added = api.added(at=AT, event_log_entries=9, seed=2)
    times = sorted(e["editTime"] for e in added["event_log"])
    assert times[0] == AT_MS, "one at at's very millisecond"
    assert any(t != AT_MS and t // 1000 == AT_MS // 1000 for t in times), "same second, other ms"
    assert all(AT_MS <= t < (AT_MS // 3_600_000 + 1) * 3_600_000 for t in times), "same hour"
    after = api.get("/event-log", limit=10000, direction="ASC")["eventLogEntries"]
    assert len(after) == len(before) + 9
    assert after == ds.event_log, "oldest first, as stored"
    since = api.get("/event-log", **{"from": str(AT_MS), "direction": "ASC"})["eventLogEntries"]
    assert {e["id"] for e in added["event_log"]} <= {e["id"] for e in since}
    assert all(e["actionType"] == "CHANGE" for e in added["event_log"])
    keys = {(e["editTime"], e["entityId"], str(e["changes"])) for e in added["event_log"]}
    assert len(keys) == 9, "distinct entries even within one millisecond"
    latest = max(added["event_log"], key=lambda e: e["editTime"])
    kind = {
        "CAMPAIGN": "campaign",
        "OFFER": "offer",
        "LANDER": "lander",
        "FLOW": "flow",
        "TRAFFIC_SOURCE": "traffic-source",
        "AFFILIATE_NETWORK": "affiliate-network",
    }[latest["category"]]
    entity = api.get(f"/{kind}/{latest['entityId']}")
    stamp = datetime.fromtimestamp(latest["editTime"] / 1000, timezone.utc)
    assert entity["updatedTime"] >= stamp.strftime("%Y-%m-%dT%H:%M:%S")


def test_existing_click_ids_do_not_move(api: Api) -> None:
    ds = api.srv.dataset
    campaign = next(c["id"] for c in ds.entities("campaign") if not c["deleted"])
    old_live = api.get(f"/report/live/visits/{campaign}", limit=1000)["rows"]
    old_conv = api.conversions()
    api.added(at="2026-03-02T08:00:00Z", visits=30, seed=6, until="2026-03-06T20:00:00Z")
    live = {r["clickId"]: r for r in api.get(f"/report/live/visits/{campaign}", limit=1000)["rows"]}
    kept = [r for r in old_live if r["clickId"] in live]
    assert len(kept) > len(old_live) // 2
    assert all(live[r["clickId"]] == r for r in kept), "same click, same details"
    conv = {
        (r["clickId"], r["conversionType"], r["postbackTimestamp"]): r for r in api.conversions()
    }
    for r in old_conv:
        assert conv[(r["clickId"], r["conversionType"], r["postbackTimestamp"])] == r


def test_the_same_seed_adds_the_same_data() -> None:
    args: dict[str, Any] = {"visits": 8, "conversions": 5, "event_log_entries": 6}
    one = make_dataset().add_late_data(AT, seed=9, **args)
    two = make_dataset().add_late_data(AT, seed=9, **args)
    other = make_dataset().add_late_data(AT, seed=10, **args)
    assert one == two
    assert one != other
    assert one["at"] == "2026-03-05T10:20:30.250Z"


def test_bad_requests_change_nothing(api: Api) -> None:
    ds = api.srv.dataset
    state = (ds.n_events, ds.n_conversions, len(ds.event_log))
    for body in (
        {"at": "2026-04-01T00:00:00Z", "visits": 3},  # outside the data range
        {"at": AT, "visits": -1},
        {"at": AT, "visits": 2, "colour": "red"},
        {"at": AT, "conversions": 2, "until": "2026-03-05T10:00:00Z"},
        {"at": "yesterday", "visits": 1},
        {"at": AT, "visits": 1, "campaign_ids": ["no-such-campaign"]},
        {"at": "2026-03-01T00:00:10Z", "conversions": 1},  # no click before it
    ):
        r = api.add_data(**body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == "BAD_REQUEST"
    assert (ds.n_events, ds.n_conversions, len(ds.event_log)) == state


def test_later_instants_follow_until(api: Api) -> None:
    until = datetime(2026, 3, 6, 12, tzinfo=timezone.utc)
    added = api.added(
        at=AT, visits=40, conversions=12, event_log_entries=12, seed=5, until=until.isoformat()
    )
    hour_end = (AT_MS // 3_600_000 + 1) * 3600
    stamps = [v["ts"] for v in added["visits"]] + [c["postback_ts"] for c in added["conversions"]]
    assert all(AT_MS // 1000 <= t < until.timestamp() for t in stamps)
    assert any(t >= hour_end for t in stamps), "some go past at's hour"
    assert any(t < hour_end for t in stamps)
    entries = [e["editTime"] for e in added["event_log"]]
    assert all(AT_MS <= t < until.timestamp() * 1000 for t in entries)
    assert datetime.fromtimestamp(max(stamps), timezone.utc) < until + timedelta(seconds=1)
