"""Tests of the Voluum sandbox itself (data model, HTTP API, limits, faults, CLI)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.helpers import sandbox_api, sandbox_login
from voluum_sandbox import Dataset, SandboxServer
from voluum_sandbox import auth as sandbox_auth
from voluum_sandbox.catalog import CONVERSION_TYPES

START = date(2026, 2, 20)
AMPM = re.compile(r"^\d{4}-\d{2}-\d{2} (0[1-9]|1[0-2]):[0-5]\d:[0-5]\d (AM|PM)$")
ERROR_KEYS = {"code", "description", "messages", "webRequestId", "time"}


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset(seed=7, start=START, days=30, campaigns=12, events_per_campaign_hour=3, zones=40)


@pytest.fixture(scope="module")
def srv(ds: Dataset):
    server = SandboxServer(dataset=ds, port=0, rate_limit=None)
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _reset_knobs(srv: SandboxServer):
    yield
    srv.configure(
        latency=0.0,
        rate_limit=None,
        faults=None,
        retry_after=None,
        token_lifetime=4 * 3600,
        workspaces_status=200,
        live_status=200,
        event_log_status=200,
    )


login = sandbox_login


@pytest.fixture(scope="module")
def api(srv: SandboxServer) -> requests.Session:
    return sandbox_api(srv)


def get(api: requests.Session, path: str, **params) -> requests.Response:
    return api.get(api.base + path, params=params, timeout=60)  # type: ignore[attr-defined]


def report(api: requests.Session, **params) -> dict:
    r = get(api, "/report", **params)
    assert r.status_code == 200, r.text
    return r.json()


def cents(x: float) -> int:
    return round(x * 100)


def assert_error(r: requests.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == code
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", body["error"]["time"])
    return body


# --------------------------------------------------------------------------- dataset


def test_dataset_is_deterministic(ds: Dataset) -> None:
    again = Dataset(
        seed=7, start=START, days=30, campaigns=12, events_per_campaign_hour=3, zones=40
    )
    assert again.entities("campaign") == ds.entities("campaign")
    assert again.ev_visits == ds.ev_visits
    assert again.cv_post == ds.cv_post
    other = Dataset(seed=8, start=START, days=2, campaigns=3)
    assert other.campaigns[0]["id"] != ds.campaigns[0]["id"]


def test_dataset_shapes(ds: Dataset) -> None:
    uuid_re = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    iso_re = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    assert len(ds.entities("workspace")) == 2
    assert ds.entities("workspace")[0]["name"] == "Public"
    for kind in ("campaign", "offer", "lander", "flow", "traffic-source", "affiliate-network"):
        for e in ds.entities(kind):
            assert uuid_re.match(e["id"])
            assert iso_re.match(e["createdTime"]) and iso_re.match(e["updatedTime"])
            assert e["createdTime"] <= e["updatedTime"]
            assert isinstance(e["deleted"], bool)
    campaigns = ds.entities("campaign")
    assert any(c["deleted"] for c in campaigns) and not all(c["deleted"] for c in campaigns)
    countries = [e["country"] for k in ("campaign", "offer", "lander") for e in ds.entities(k)]
    assert any(isinstance(c, dict) for c in countries)
    assert any(isinstance(c, str) for c in countries)
    names = [e["name"] for k in ("campaign", "offer", "traffic-source") for e in ds.entities(k)]
    assert any(not n.isascii() for n in names)
    c = campaigns[0]
    assert {
        "url",
        "costModel",
        "revenueModel",
        "trafficSource",
        "redirectTarget",
        "workspace",
    } <= set(c)


def test_conversions_are_the_single_source_of_truth(ds: Dataset) -> None:
    per_event_conv = [0] * ds.n_events
    per_event_rev = [0] * ds.n_events
    click_types: dict[tuple[int, int], list[int]] = {}
    for r, e in enumerate(ds.cv_event):
        per_event_conv[e] += 1
        per_event_rev[e] += ds.cv_rev[r]
        assert ds.cv_post[r] > ds.ev_ts[e]
        assert ds.cv_post[r] - ds.ev_ts[e] <= 4 * 86400
        click_types.setdefault((e, ds.cv_click[r]), []).append(ds.cv_type[r])
    assert per_event_conv == ds.ev_conv
    assert per_event_rev == ds.ev_rev
    for i in range(ds.n_events):
        assert ds.ev_conv[i] <= ds.ev_clicks[i] <= ds.ev_visits[i]
        assert ds.ev_uv[i] <= ds.ev_visits[i]
    assert any(len(t) == 2 for t in click_types.values()), "some click converts twice"
    assert all(len(set(t)) == len(t) for t in click_types.values())
    # some conversions land on a later UTC day than their visit
    assert any(ds.cv_post[r] // 86400 > ds.ev_ts[e] // 86400 for r, e in enumerate(ds.cv_event))


def test_default_dataset_is_fast_to_build_and_recent() -> None:
    d = Dataset()
    assert d.seed == 1 and d.n_campaigns == 12 and d.days == 60
    today = datetime.now(ZoneInfo("UTC")).date()
    assert d.start == today - timedelta(days=59)


# --------------------------------------------------------------------------- auth


class FrozenTime:
    """The `time` module with `time()` stopped at one instant (for the sandbox's clock)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)


def test_login_access_key_and_password(srv: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = datetime(2026, 3, 8, 12, 0, 0, 250_000, tzinfo=ZoneInfo("UTC"))
    monkeypatch.setattr(sandbox_auth, "time", FrozenTime(issued.timestamp()))
    for path, body in (
        ("/auth/access/session", {"accessId": srv.access_id, "accessKey": srv.access_key}),
        ("/auth/session", {"email": srv.email, "password": srv.password}),
    ):
        r = requests.post(srv.url + path, json=body, timeout=10)
        assert r.status_code == 200
        data = r.json()
        assert set(data) == {"token", "expirationTimestamp", "inaugural"}
        assert len(data["token"]) == 32
        assert data["inaugural"] is False
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["expirationTimestamp"])
        expires = datetime.strptime(data["expirationTimestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
        # The sandbox's own clock is frozen: the fixed lifetime is exact, no wall clock.
        assert expires.replace(tzinfo=ZoneInfo("UTC")) - issued == timedelta(hours=4)


def test_bad_credentials_envelope(srv: SandboxServer) -> None:
    for path, body in (
        ("/auth/access/session", {"accessId": srv.access_id, "accessKey": "nope"}),
        ("/auth/session", {"email": srv.email, "password": "wrong"}),
    ):
        r = requests.post(srv.url + path, json=body, timeout=10)
        err = assert_error(r, 401, "BAD_CREDENTIALS")
        assert err["typeName"] == "badCredentials"
        assert err["typeCode"] == [401, 0]
        assert err["status"] == "UNAUTHORIZED"
        assert err["error"]["description"] == "" and err["error"]["messages"] == []
        assert err["error"]["webRequestId"].startswith("req-")


def test_token_required_and_expiry(srv: SandboxServer) -> None:
    url = srv.url + "/campaign"
    assert_error(requests.get(url, timeout=10), 401, "UNAUTHORIZED")
    assert_error(
        requests.get(url, headers={"cwauth-token": "x" * 32}, timeout=10), 401, "UNAUTHORIZED"
    )
    token = login(srv)
    assert requests.get(url, headers={"CWAUTH-TOKEN": token}, timeout=10).status_code == 200
    assert requests.get(url, headers={"Cwauth-Token": token}, timeout=10).status_code == 200
    srv.expire_tokens()
    r = requests.get(url, headers={"cwauth-token": token}, timeout=10)
    body = assert_error(r, 401, "SESSION_EXPIRED")
    assert body["status"] == "UNAUTHORIZED"
    # a token issued with a zero lifetime is already expired: expiry is fixed, not sliding
    srv.configure(token_lifetime=0)
    short = login(srv)
    assert_error(
        requests.get(url, headers={"cwauth-token": short}, timeout=10), 401, "SESSION_EXPIRED"
    )


def test_session_check_and_logout(srv: SandboxServer) -> None:
    token = login(srv)
    h = {"cwauth-token": token}
    r = requests.get(srv.url + "/auth/session", headers=h, timeout=10)
    assert r.status_code == 200 and r.json()["alive"] is True
    r = requests.delete(srv.url + "/auth/session", headers=h, timeout=10)
    assert r.status_code == 200 and r.content == b""
    assert_error(requests.get(srv.url + "/campaign", headers=h, timeout=10), 401, "UNAUTHORIZED")


def test_access_key_deny_list(srv: SandboxServer, api: requests.Session) -> None:
    h = dict(api.headers)
    for method, path in (
        ("GET", "/billing/info"),
        ("POST", "/report/manual-cost"),
        ("GET", "/billing/invoice/abc-123"),
        ("DELETE", "/profile/invitation/someone@example.com"),
        ("GET", "/payment/coupon"),
    ):
        r = requests.request(method, srv.url + path, headers=h, json={}, timeout=10)
        body = assert_error(r, 403, "ACCESS_DENIED")
        assert body["status"] == "FORBIDDEN"
    # the same endpoint is not denied for an email/password session (sandbox: not implemented)
    r = requests.post(
        srv.url + "/auth/session", json={"email": srv.email, "password": srv.password}, timeout=10
    )
    pw = {"cwauth-token": r.json()["token"]}
    assert requests.get(srv.url + "/billing/info", headers=pw, timeout=10).status_code == 404


# --------------------------------------------------------------------------- entities


@pytest.mark.parametrize(
    ("path", "key", "kind"),
    [
        ("/campaign", "campaigns", "campaign"),
        ("/offer", "offers", "offer"),
        ("/lander", "landers", "lander"),
        ("/flow", "flows", "flow"),
        ("/traffic-source", "trafficSources", "traffic-source"),
        ("/affiliate-network", "affiliateNetworks", "affiliate-network"),
    ],
)
def test_entity_lists(api: requests.Session, ds: Dataset, path: str, key: str, kind: str) -> None:
    active = get(api, path).json()
    assert list(active) == [key]
    everything = get(api, path, includeDeleted="true").json()[key]
    assert everything == ds.entities(kind)
    assert active[key] == [e for e in everything if not e["deleted"]]
    one = get(api, f"{path}/{everything[0]['id']}")
    assert one.status_code == 200 and one.json() == everything[0]
    assert_error(get(api, f"{path}/00000000-0000-4000-8000-000000000000"), 404, "NOT_FOUND")


def test_workspaces_and_knob(srv: SandboxServer, api: requests.Session, ds: Dataset) -> None:
    body = get(api, "/multiuser/workspace").json()
    assert body == {"workspaces": [{"id": w["id"], "name": w["name"]} for w in ds.workspaces]}
    srv.configure(workspaces_status=403)
    assert_error(get(api, "/multiuser/workspace"), 403, "ACCESS_DENIED")
    srv.configure(workspaces_status=404)
    assert_error(get(api, "/multiuser/workspace"), 404, "NOT_FOUND")


def test_column_info_and_timezones(api: requests.Session) -> None:
    cols = get(api, "/column/info").json()["columnMappings"]
    by_key = {c["key"]: c for c in cols}
    for c in cols:
        assert set(c) == {"key", "label", "type", "canGroupBy", "canBeRestricted"}
    assert by_key["campaignId"]["canGroupBy"] is True
    assert by_key["revenue"]["type"] == "monetary-decimal-4"
    assert by_key["ctr"]["type"] == "percentage"
    assert by_key["visits"]["type"] == "integer"
    assert by_key["customConversions1"]["label"] == "Lead"
    assert {"day", "hour", "customVariable1", "countryCode", "os", "browser"} <= {
        c["key"] for c in cols if c["canGroupBy"]
    }
    zones = get(api, "/dictionary/timezone").json()["timezones"]
    assert "America/New_York" in {z["code"] for z in zones}


def test_event_log(srv: SandboxServer, api: requests.Session, ds: Dataset) -> None:
    body = get(api, "/event-log", limit=10000).json()
    entries = body["eventLogEntries"]
    assert body["totalRows"] == len(entries) == len(ds.event_log)
    times = [e["editTime"] for e in entries]
    assert times == sorted(times, reverse=True)  # newest first
    seconds = [t // 1000 for t in times]
    assert len(seconds) > len(set(seconds)), "two entries share one second"
    actions = {e["actionType"] for e in entries}
    assert {"CREATE", "CHANGE", "ARCHIVE", "RESTORE"} <= actions
    for kind in ("campaign", "offer", "lander"):
        for ent in ds.entities(kind):
            mine = [e for e in entries if e["entityId"] == ent["id"]]
            assert min(e["editTime"] for e in mine) == _ms(ent["createdTime"])
            assert max(e["editTime"] for e in mine) == _ms(ent["updatedTime"])
            last = max(mine, key=lambda e: e["editTime"])
            assert (last["actionType"] == "ARCHIVE") == ent["deleted"]
    # from (inclusive) / to (exclusive) as epoch milliseconds, and paging
    pivot = times[len(times) // 2]
    newer = get(api, "/event-log", **{"from": pivot, "limit": 10000}).json()
    assert newer["totalRows"] == sum(1 for t in times if t >= pivot)
    page = get(api, "/event-log", limit=5, offset=5).json()
    assert page["eventLogEntries"] == entries[5:10]
    srv.configure(event_log_status=403)
    assert_error(get(api, "/event-log"), 403, "ACCESS_DENIED")


def _ms(iso: str) -> int:
    dt = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=ZoneInfo("UTC"))
    return round(dt.timestamp() * 1000)


# --------------------------------------------------------------------------- /report


def test_hour_rule_and_time_formats(api: requests.Session) -> None:
    for bad in ("2026-02-21T10:30", "2026-02-21T10:00:01Z", "2026-02-21T10:00:00.500Z"):
        assert_error(get(api, "/report", **{"from": bad, "to": "2026-02-22"}), 400, "BAD_REQUEST")
    assert_error(get(api, "/report", to="2026-02-22"), 400, "PARAMETER_MISSING")
    assert_error(get(api, "/report", **{"from": "2026-02-21"}), 400, "PARAMETER_MISSING")
    assert_error(
        get(api, "/report", **{"from": "2026-02-21", "to": "2026-02-22", "tz": "Mars/Base"}),
        400,
        "BAD_REQUEST",
    )
    totals = []
    for f, t in (
        ("2026-02-21", "2026-02-22"),
        ("2026-02-21T00", "2026-02-22T00"),
        ("2026-02-21T00:00:00", "2026-02-22T00:00:00"),
        ("2026-02-21T00:00:00Z", "2026-02-22T00:00:00Z"),
        ("2026-02-21T00:00:00.000Z", "2026-02-22T00:00:00.000Z"),
    ):
        totals.append(report(api, **{"from": f, "to": t, "include": "ALL"})["totals"])
    assert all(t == totals[0] for t in totals)
    assert totals[0]["visits"] > 0


def test_from_to_are_wall_clock_in_tz(api: requests.Session, ds: Dataset) -> None:
    for tz in ("Etc/GMT", "America/New_York", "Asia/Kolkata", "Europe/Berlin"):
        body = report(
            api,
            **{
                "from": "2026-03-01T00:00:00Z",
                "to": "2026-03-02T00:00:00Z",
                "tz": tz,
                "include": "ALL",
            },
        )
        truth = ds.truth_totals(datetime(2026, 3, 1), datetime(2026, 3, 2), tz)
        assert body["totals"]["visits"] == truth["visits"]
        assert cents(body["totals"]["cost"]) == truth["cost_cents"]
        assert cents(body["totals"]["revenue"]) == truth["revenue_cents"]


def test_dst_day_has_23_hours(api: requests.Session, ds: Dataset) -> None:
    q = {
        "from": "2026-03-08",
        "to": "2026-03-09",
        "tz": "America/New_York",
        "groupBy": "hour",
        "include": "ALL",
    }
    body = report(api, **q)
    hours = [r["hour"] for r in body["rows"]]
    assert body["totalRows"] == 23
    assert 2 not in hours and sorted(hours) == hours
    truth = ds.truth_totals(datetime(2026, 3, 8), datetime(2026, 3, 9), "America/New_York")
    assert sum(r["visits"] for r in body["rows"]) == truth["visits"] == body["totals"]["visits"]
    utc = report(api, **{**q, "tz": "Etc/GMT"})
    assert utc["totalRows"] == 24


def test_same_visits_whatever_the_grouping(api: requests.Session, ds: Dataset) -> None:
    base = {"from": "2026-02-22", "to": "2026-03-04", "include": "ALL", "limit": 100000}
    truth = ds.truth_totals(datetime(2026, 2, 22), datetime(2026, 3, 4))
    for group in (
        "campaign",
        "offerId",
        "country",
        "country-code",
        "traffic-source",
        "custom-variable-1",
        "day",
        "os",
    ):
        body = report(api, **base, groupBy=group)
        assert sum(r["visits"] for r in body["rows"]) == truth["visits"], group
        assert sum(r["conversions"] for r in body["rows"]) == truth["conversions"], group
        assert sum(cents(r["revenue"]) for r in body["rows"]) == truth["revenue_cents"], group


@pytest.mark.parametrize(
    "case",
    [
        (["campaign", "day"], "America/New_York", "VISIT", "ACTIVE"),
        (["campaignId", "day"], "Etc/GMT", "CONVERSION", "ALL"),
        (["offer", "country"], "Europe/Berlin", "VISIT", "ALL"),
        (["traffic-source", "affiliate-network", "lander"], "Asia/Kolkata", "CONVERSION", "ACTIVE"),
        (["custom-variable-1"], "Etc/GMT", "VISIT", "ARCHIVED"),
        (["flow", "hour"], "America/Los_Angeles", "CONVERSION", "ALL"),
        (["browser", "os", "customVariable2"], "UTC", "VISIT", "TRAFFIC"),
    ],
)
def test_rows_match_truth(api: requests.Session, ds: Dataset, case: tuple) -> None:
    groups, tz, mode, include = case
    start, end = datetime(2026, 3, 5, 6), datetime(2026, 3, 12)
    body = report(
        api,
        **{"from": "2026-03-05T06", "to": "2026-03-12", "tz": tz},
        groupBy=groups,
        conversionTimeMode=mode,
        include=include,
        limit=100000,
    )
    truth = ds.truth_rows(groups, start, end, tz, mode, include=include)
    assert body["totalRows"] == len(truth) == len(body["rows"])
    for row in body["rows"]:
        t = truth[Dataset.row_key(row, groups)]
        assert row["visits"] == t["visits"]
        assert row["clicks"] == t["clicks"]
        assert row["conversions"] == t["conversions"]
        assert cents(row["cost"]) == t["cost_cents"]
        assert cents(row["revenue"]) == t["revenue_cents"]
        assert row["customConversions1"] == t["customConversions1"]
        assert cents(row["customRevenue2"]) == t["customRevenue2_cents"]


def test_conversion_time_mode_moves_conversions(api: requests.Session, ds: Dataset) -> None:
    q = {"from": "2026-03-10", "to": "2026-03-11", "include": "ALL"}
    visit = report(api, **q)["totals"]
    conv = report(api, **q, conversionTimeMode="CONVERSION")["totals"]
    assert visit["visits"] == conv["visits"] and visit["cost"] == conv["cost"]
    t_conv = ds.truth_totals(datetime(2026, 3, 10), datetime(2026, 3, 11), "Etc/GMT", "CONVERSION")
    assert conv["conversions"] == t_conv["conversions"]
    assert visit["conversions"] != conv["conversions"] or visit["revenue"] != conv["revenue"]


def test_metric_formulas(api: requests.Session) -> None:
    body = report(
        api, **{"from": "2026-03-01", "to": "2026-03-03", "include": "ALL"}, groupBy="campaign"
    )
    for m in [body["totals"], *body["rows"]]:
        assert m["profit"] == pytest.approx(m["revenue"] - m["cost"], abs=1e-6)
        assert m["roi"] == pytest.approx(
            round(m["profit"] / m["cost"] * 100, 5) if m["cost"] else 0, abs=1e-4
        )
        assert m["ctr"] == pytest.approx(round(m["clicks"] / m["visits"] * 100, 5), abs=1e-5)
        assert m["cr"] == pytest.approx(
            round(m["conversions"] / m["clicks"] * 100, 5) if m["clicks"] else 0
        )
        assert m["cv"] == pytest.approx(round(m["conversions"] / m["visits"] * 100, 5))
        assert m["epv"] == pytest.approx(round(m["revenue"] / m["visits"], 5), abs=1e-5)
        assert m["cpv"] == pytest.approx(round(m["cost"] / m["visits"], 5), abs=1e-5)
        assert m["ap"] == pytest.approx(
            round(m["revenue"] / m["conversions"], 5) if m["conversions"] else 0
        )
        assert isinstance(m["visits"], int) and isinstance(m["revenue"], float)
        assert sum(m[f"customConversions{n}"] for n in range(1, 6)) == m["conversions"]
    assert body["truncated"] is False and body["messages"] == []
    assert body["columnMappings"]
    row = body["rows"][0]
    assert {"campaignId", "campaignName", "campaignWorkspaceId", "trafficSourceName"} <= set(row)


def test_paging_covers_every_row_once(api: requests.Session) -> None:
    q = {
        "from": "2026-02-25",
        "to": "2026-03-02",
        "groupBy": ["campaign", "day"],
        "include": "ALL",
        "sort": "visits",
        "direction": "desc",
    }
    full = report(api, **q, limit=100000)
    total = full["totalRows"]
    seen = []
    offset = 0
    while offset < total:
        page = report(api, **q, limit=7, offset=offset)
        assert page["limit"] == 7 and page["offset"] == offset and page["totalRows"] == total
        assert page["totals"] == full["totals"]
        seen.extend((r["campaignId"], r["day"]) for r in page["rows"])
        offset += 7
    assert len(seen) == total == len(set(seen))
    assert seen == [(r["campaignId"], r["day"]) for r in full["rows"]]
    assert report(api, **q, limit=7, offset=total)["rows"] == []
    assert report(api, **q, limit=10**7)["limit"] == 100000
    assert (
        report(api, **{k: v for k, v in q.items() if k not in ("sort", "direction")})["limit"]
        == 100
    )


def test_sorting(api: requests.Session) -> None:
    q = {"from": "2026-03-01", "to": "2026-03-08", "groupBy": "offer", "include": "ALL"}
    desc = report(api, **q, sort="visits", direction="desc")["rows"]
    assert [r["visits"] for r in desc] == sorted((r["visits"] for r in desc), reverse=True)
    asc = report(api, **q, sort="offerName", direction="ASC")["rows"]
    assert [r["offerName"] for r in asc] == sorted(r["offerName"] for r in asc)
    roi = report(api, **q, sort="roi", direction="DESC")["rows"]
    assert [r["roi"] for r in roi] == sorted((r["roi"] for r in roi), reverse=True)
    assert_error(get(api, "/report", **q, sort="visits:desc"), 400, "INVALID_QUERY")
    assert_error(get(api, "/report", **q, sort="nope"), 400, "INVALID_QUERY")
    # ties are broken by the group key (entity name, then id, then day), ascending
    ties = report(api, **{**q, "groupBy": ["offer", "day"]}, sort="errors", direction="DESC")[
        "rows"
    ]
    errors = [r["errors"] for r in ties]
    assert len(set(errors)) < len(errors), "the query has ties to break"
    by_key = sorted(ties, key=lambda r: (-r["errors"], r["offerName"], r["offerId"], r["day"]))
    assert [(r["offerId"], r["day"]) for r in ties] == [(r["offerId"], r["day"]) for r in by_key]


def test_group_by_validation(api: requests.Session) -> None:
    q = {"from": "2026-03-01", "to": "2026-03-02"}
    assert_error(
        get(api, "/report", **q, groupBy=["campaign", "offer", "day", "os"]), 400, "INVALID_QUERY"
    )
    assert_error(get(api, "/report", **q, groupBy="nonsense"), 400, "INVALID_QUERY")
    for spelling in ("campaign", "campaignId", "campaign_id"):
        assert "campaignId" in report(api, **q, groupBy=spelling)["rows"][0]
    for spelling in ("traffic-source", "trafficSourceId", "traffic_source_id"):
        assert "trafficSourceId" in report(api, **q, groupBy=spelling)["rows"][0]
    for spelling in ("custom-variable-1", "customVariable1"):
        row = report(api, **q, groupBy=spelling)["rows"][0]
        assert re.fullmatch(r"zone-\d{4}", row["customVariable1"])
    two = {"from": "2026-03-01", "to": "2026-03-03", "tz": "America/New_York", "include": "ALL"}
    day = report(api, **two, groupBy="day")["rows"]
    assert [r["day"] for r in day] == ["2026-03-01", "2026-03-02"]
    assert_error(get(api, "/report", **q, currency="XYZ"), 400, "BAD_REQUEST")


def test_include_active_vs_all(api: requests.Session, ds: Dataset) -> None:
    archived = {c["id"] for c in ds.entities("campaign") if c["deleted"]}
    q = {"from": "2026-03-01", "to": "2026-03-05", "groupBy": "campaign"}
    active = {r["campaignId"] for r in report(api, **q)["rows"]}
    everything = {r["campaignId"] for r in report(api, **q, include="ALL")["rows"]}
    only_archived = report(api, **q, include="ARCHIVED")["rows"]
    assert archived and active.isdisjoint(archived)
    assert everything == active | archived
    assert {r["campaignId"] for r in only_archived} == archived
    assert all(r["deleted"] for r in only_archived)


def test_filters_workspaces_and_currency(api: requests.Session, ds: Dataset) -> None:
    q = {"from": "2026-03-01", "to": "2026-03-05", "include": "ALL"}
    camp = ds.campaigns[1]
    one = report(api, **q, groupBy="day", filter1="campaign", filter1Value=camp["id"])
    by_campaign = {r["campaignId"]: r for r in report(api, **q, groupBy="campaign")["rows"]}
    assert one["totals"]["visits"] == by_campaign[camp["id"]]["visits"]
    ws = ds.workspaces[1]["id"]
    rows = report(api, **q, groupBy="campaign", workspaces=ws)["rows"]
    assert rows and all(r["campaignWorkspaceId"] == ws for r in rows)
    big = report(
        api, **q, groupBy="campaign", filter1="visits", filter1Value=1000, filter1Relation="GREATER"
    )["rows"]
    assert all(r["visits"] > 1000 for r in big)
    usd = report(api, **q)["totals"]
    eur = report(api, **q, currency="EUR")["totals"]
    assert eur["visits"] == usd["visits"]
    # The rate is fixed (0.92, per event cost and per conversion revenue): exact to the cent.
    truth = ds.truth_totals(datetime(2026, 3, 1), datetime(2026, 3, 5), currency="EUR")
    assert cents(eur["cost"]) == truth["cost_cents"]
    assert cents(eur["revenue"]) == truth["revenue_cents"]
    assert cents(eur["cost"]) != cents(usd["cost"])


# --------------------------------------------------------------------------- conversions & live


def test_conversions_report(api: requests.Session, ds: Dataset) -> None:
    tz = "America/New_York"
    q = {"from": "2026-03-03", "to": "2026-03-05", "tz": tz}
    truth = ds.conversions_between(datetime(2026, 3, 3), datetime(2026, 3, 5), tz)
    rows: list[dict] = []
    offset = 0
    while True:
        page = get(api, "/report/conversions", **q, limit=50, offset=offset).json()
        assert page["limit"] == 50 and page["totalRows"] == len(truth)
        rows.extend(page["rows"])
        offset += 50
        if offset >= page["totalRows"]:
            break
    assert [r["clickId"] for r in rows] == [t["clickId"] for t in truth]
    assert [r["conversionTypeId"] for r in rows] == [t["conversionTypeId"] for t in truth]
    zone = ZoneInfo(tz)
    for r, t in zip(rows, truth, strict=True):
        assert AMPM.match(r["postbackTimestamp"]) and AMPM.match(r["visitTimestamp"])
        assert r["postbackTimestamp"] == t["postbackTimestamp"]
        local = datetime.strptime(r["postbackTimestamp"], "%Y-%m-%d %I:%M:%S %p")
        assert datetime(2026, 3, 3) <= local < datetime(2026, 3, 5)
        assert local.replace(tzinfo=zone).timestamp() == t["postback_ts"]
        assert cents(r["revenue"]) == t["revenue_cents"]
        assert r["conversions"] == 1
        assert r["conversionType"] in {c[1] for c in CONVERSION_TYPES}
    txns = [r["transactionId"] for r in rows]
    assert len(set(txns)) < len(txns), "transactionId is not unique"
    keys = {(r["clickId"], r["conversionTypeId"]) for r in rows}
    assert len(keys) == len(rows)
    assert_error(
        get(api, "/report/conversions", **{"from": "2026-03-03T01:30", "to": "2026-03-04"}),
        400,
        "BAD_REQUEST",
    )


def test_live_endpoints(srv: SandboxServer, api: requests.Session, ds: Dataset) -> None:
    cid = ds.campaigns[0]["id"]
    for kind in ("clicks", "visits"):
        rows = get(api, f"/report/live/{kind}/{cid}", limit=50).json()["rows"]
        assert len(rows) == 50
        assert all(r["campaignId"] == cid for r in rows)
        stamps = [datetime.strptime(r["timestamp"], "%Y-%m-%d %I:%M:%S %p") for r in rows]
        assert stamps == sorted(stamps, reverse=True)
        assert len({r["clickId"] for r in rows}) == 50
        again = get(api, f"/report/live/{kind}/{cid}", limit=50).json()["rows"]
        assert again == rows
    assert len(get(api, f"/report/live/visits/{cid}", limit=5000).json()["rows"]) == 1000
    assert_error(get(api, "/report/live/clicks/unknown-campaign"), 404, "NOT_FOUND")
    srv.configure(live_status=403)
    assert_error(get(api, f"/report/live/clicks/{cid}"), 403, "ACCESS_DENIED")


# --------------------------------------------------------------------------- limits & faults


def test_rate_limit_answers_429(srv: SandboxServer) -> None:
    srv.configure(rate_limit=3, retry_after=2)
    token = login(srv)
    srv.clear_requests()
    s = requests.Session()
    s.headers["cwauth-token"] = token
    statuses = []
    for _ in range(60):
        r = s.get(srv.url + "/column/info", timeout=10)
        statuses.append(r.status_code)
        if r.status_code == 429:
            body = assert_error(r, 429, "NUMBER_OF_REQUEST_FOR_IP_EXCEEDED")
            assert body["error"]["code"] == "NUMBER_OF_REQUEST_FOR_IP_EXCEEDED"
            assert r.headers["Retry-After"] == "2"
            break
    assert 429 in statuses
    stats = srv.stats()
    assert max(stats["max_accepted_per_second"].values()) <= 3
    assert stats["by_status"]["429"] == 1


def test_faults_fire(srv: SandboxServer, api: requests.Session) -> None:
    srv.clear_requests()
    url = "/campaign"
    srv.fail_next("500")
    assert_error(get(api, url), 500, "INTERNAL_SERVER_ERROR")
    srv.fail_next("502_html")
    r = get(api, url)
    assert r.status_code == 502 and r.headers["Content-Type"].startswith("text/html")
    srv.fail_next("503")
    assert get(api, url).status_code == 503
    srv.fail_next("invalid_json")
    r = get(api, url)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        json.loads(r.content)
    srv.fail_next("error_in_200")
    r = get(api, url)
    assert r.status_code == 200 and "error" in r.json()
    srv.fail_next("burst_429", count=2)
    assert [get(api, url).status_code for _ in range(3)] == [429, 429, 200]
    srv.fail_next("reset")
    with pytest.raises(requests.ConnectionError):
        get(api, url)
    srv.fail_next("truncated")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        get(api, url)
    assert get(api, url).status_code == 200
    counts = srv.fault_counts
    assert counts == {
        "500": 1,
        "502_html": 1,
        "503": 1,
        "invalid_json": 1,
        "error_in_200": 1,
        "burst_429": 2,
        "reset": 1,
        "truncated": 1,
    }
    log = srv.requests
    assert [e["fault"] for e in log if e["fault"]].count("burst_429") == 2
    assert any(e["status"] == 0 and e["fault"] == "reset" for e in log)


def test_fault_probabilities_and_schedule(srv: SandboxServer, api: requests.Session) -> None:
    srv.clear_requests()
    srv.configure(faults={"503": 1.0})
    assert {get(api, "/offer").status_code for _ in range(5)} == {503}
    srv.configure(faults={"schedule": {"2": "500", "4": "burst_429"}, "burst_length": 2})
    codes = [get(api, "/offer").status_code for _ in range(6)]
    assert codes == [200, 500, 200, 429, 429, 200]
    srv.configure(faults={"500": 0.5, "seed": 3})
    first = [get(api, "/offer").status_code for _ in range(20)]
    srv.configure(faults={"500": 0.5, "seed": 3})
    second = [get(api, "/offer").status_code for _ in range(20)]
    assert first == second and 500 in first and 200 in first
    # logins are spared unless asked for
    srv.configure(faults={"500": 1.0})
    login(srv)
    srv.configure(faults={"500": 1.0, "login": True})
    r = requests.post(
        srv.url + "/auth/access/session",
        json={"accessId": srv.access_id, "accessKey": srv.access_key},
        timeout=10,
    )
    assert r.status_code == 500


def test_request_log_and_admin_api(srv: SandboxServer, api: requests.Session) -> None:
    srv.clear_requests()
    token = api.headers["cwauth-token"]
    get(api, "/report", **{"from": "2026-03-01", "to": "2026-03-02"}, groupBy=["campaign", "day"])
    requests.post(
        srv.url + "/auth/access/session", json={"accessId": "x", "accessKey": "y"}, timeout=10
    )
    log = srv.requests
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("GET", "/report", 200),
        ("POST", "/auth/access/session", 401),
    ]
    assert log[0]["query"]["groupBy"] == ["campaign", "day"]
    assert log[0]["token"] and log[0]["token"] != token and token not in json.dumps(log)
    assert log[1]["token"] is None
    assert isinstance(log[0]["t"], float)
    admin = srv.url + "/__sandbox__/"
    assert requests.get(admin + "requests", timeout=10).json()["requests"][0]["path"] == "/report"
    stats = requests.get(admin + "stats", timeout=10).json()
    assert stats["by_status"] == {"200": 1, "401": 1}
    assert requests.post(
        admin + "configure", json={"latency": 0.0, "live_status": 404}, timeout=10
    ).ok
    assert srv.live_status == 404
    assert requests.post(admin + "configure", json={"bogus": 1}, timeout=10).status_code == 400
    truth = requests.get(
        admin + "truth", params={"from": "2026-03-01", "to": "2026-03-02"}, timeout=10
    ).json()
    assert truth["totals"]["visits"] > 0
    assert requests.post(admin + "clear", timeout=10).ok
    assert srv.requests == []  # admin calls are not logged
    other = login(srv)
    assert requests.post(admin + "expire-tokens", timeout=10).ok
    r = requests.get(srv.url + "/offer", headers={"cwauth-token": other}, timeout=10)
    assert_error(r, 401, "SESSION_EXPIRED")
    api.headers["cwauth-token"] = login(srv)


# --------------------------------------------------------------------------- CLI


def test_cli_prints_credentials_and_stops_cleanly() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voluum_sandbox",
            "--port",
            "0",
            "--days",
            "2",
            "--campaigns",
            "2",
            "--start",
            "2026-03-01",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(5))
        assert lines["access_id"] == "sandbox-id-1"
        r = requests.post(
            lines["url"] + "/auth/access/session",
            json={"accessId": lines["access_id"], "accessKey": lines["access_key"]},
            timeout=10,
        )
        assert r.status_code == 200
        r = requests.post(
            lines["url"] + "/auth/session",
            json={"email": lines["email"], "password": lines["password"]},
            timeout=10,
        )
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
