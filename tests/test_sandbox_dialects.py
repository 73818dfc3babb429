"""Tests of the sandbox's opt-in dialects (readings of the API that clients disagree on)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import date
from typing import Any

import msgspec
import pytest
import requests

from tests.helpers import sandbox_api, sandbox_login
from voluum_sandbox import DIALECTS, KNOBS, Dataset, ReportEngine, SandboxServer, conversion_report
from voluum_sandbox.catalog import DIMENSIONS
from voluum_sandbox.cli import parse_args
from voluum_sandbox.columns import column_mappings

START = date(2026, 2, 20)
WINDOW = {"from": "2026-02-20", "to": "2026-02-25"}
CONV_WINDOW = {"from": "2026-02-20", "to": "2026-02-27"}
ERROR_KEYS = {"code", "description", "messages", "webRequestId", "time"}
LOST_DAY = "2026-02-22"


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset(seed=7, start=START, days=5, campaigns=4)


@pytest.fixture(scope="module")
def srv(ds: Dataset):
    server = SandboxServer(dataset=ds, port=0, rate_limit=None)
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _reset(srv: SandboxServer):
    srv.configure(dialects=(), lose_row_day=None)
    yield
    srv.configure(dialects=(), lose_row_day=None)


login = sandbox_login


@pytest.fixture(scope="module")
def api(srv: SandboxServer) -> requests.Session:
    return sandbox_api(srv)


def get(api: requests.Session, path: str, **params: Any) -> requests.Response:
    return api.get(api.base + path, params=params, timeout=60)  # type: ignore[attr-defined]


def ok(api: requests.Session, path: str, **params: Any) -> dict:
    r = get(api, path, **params)
    assert r.status_code == 200, r.text
    return r.json()


def report(api: requests.Session, **params: Any) -> dict:
    return ok(api, "/report", **{**WINDOW, **params})


def assert_error(r: requests.Response, status: int, code: str, description: str | None = None):
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == ERROR_KEYS
    assert error["code"] == code
    if description is not None:
        assert error["description"] == description
    return error


def everything(api: requests.Session, path: str, rows_key: str, **params: Any) -> list[dict]:
    """All rows of a paged endpoint, 7 at a time."""
    out: list[dict] = []
    offset = 0
    while True:
        page = ok(api, path, **params, limit=7, offset=offset)
        out.extend(page[rows_key])
        offset += 7
        if offset >= page["totalRows"]:
            return out


# --------------------------------------------------------------------------- knobs


def test_dialect_names_and_knobs_are_exported() -> None:
    assert set(DIALECTS) == {
        "changes_object",
        "evlog_newest_first",
        "evlog_epoch_only",
        "evlog_iso_only",
        "groupby_ids",
        "groupby_dashed",
        "sort_no_ids",
        "no_paging_echo",
        "page_cap",
        "strict_columns",
        "no_column_info",
        "hour_text",
        "visits_without_click_id",
        "flow_report_broken",
    }
    assert len(DIALECTS) == len(set(DIALECTS))
    assert {"dialects", "lose_row_day"} <= set(KNOBS)


def test_dialects_set_by_constructor_configure_and_admin(ds: Dataset) -> None:
    server = SandboxServer(ds, dialects=("hour_text", "page_cap"), lose_row_day=date(2026, 2, 22))
    assert server.dialects == {"hour_text", "page_cap"}
    assert server.lose_row_day == "2026-02-22"
    server.configure(dialects=["no_column_info"])
    assert server.dialects == {"no_column_info"}
    assert server.lose_row_day == "2026-02-22", "lose_row_day is a knob of its own"
    server.configure(lose_row_day=None)
    assert server.lose_row_day is None
    assert server.dialects == {"no_column_info"}
    with server:
        r = requests.post(
            server.url + "/__sandbox__/configure",
            json={"dialects": ["groupby_ids", "sort_no_ids"], "lose_row_day": "2026-02-23"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert server.dialects == {"groupby_ids", "sort_no_ids"}
        assert server.lose_row_day == "2026-02-23"
        r = requests.post(
            server.url + "/__sandbox__/configure", json={"dialects": ["nope"]}, timeout=10
        )
        assert r.status_code == 400
        assert "nope" in r.json()["error"]["description"]
        assert server.dialects == {"groupby_ids", "sort_no_ids"}, "a refused change changes nothing"
    assert SandboxServer(ds).dialects == frozenset()
    assert SandboxServer(ds).lose_row_day is None


@pytest.mark.parametrize(
    "knobs",
    [
        {"dialects": ["hour_text", "bogus"]},
        {"dialects": ["groupby_ids", "groupby_dashed"]},
        {"dialects": ["evlog_epoch_only", "evlog_iso_only"]},
        {"lose_row_day": "22/02/2026"},
        {"lose_row_day": 20260222},
    ],
)
def test_bad_dialect_knobs_raise(ds: Dataset, knobs: dict) -> None:
    with pytest.raises(ValueError):
        SandboxServer(ds, **knobs)
    server = SandboxServer(ds)
    with pytest.raises(ValueError):
        server.configure(**knobs)
    assert server.dialects == frozenset()
    assert server.lose_row_day is None


def test_default_reading_is_unchanged(srv: SandboxServer, api: requests.Session, ds: Dataset):
    engine = ReportEngine(ds)
    for params in (
        {"groupBy": ["campaign", "hour"], "include": "ALL", "limit": 200, "sort": "campaignId"},
        {"groupBy": ["traffic-source", "country"], "columns": "bogus", "limit": 3, "offset": 2},
        {"groupBy": ["campaign", "day"]},
        {"groupBy": "flow"},
    ):
        q = {**WINDOW, **params}
        query = {k: v if isinstance(v, list) else [str(v)] for k, v in q.items()}
        expected = msgspec.json.decode(msgspec.json.encode(engine.report(query)))
        assert report(api, **params) == expected
    conv_q = {**CONV_WINDOW, "limit": "200", "sort": "clickId", "columns": "visits"}
    expected = msgspec.json.decode(
        msgspec.json.encode(conversion_report.answer(engine, {k: [v] for k, v in conv_q.items()}))
    )
    assert ok(api, "/report/conversions", **conv_q) == expected
    log = ok(api, "/event-log", limit=10000)
    assert log == {"eventLogEntries": ds.event_log[::-1], "totalRows": len(ds.event_log)}
    assert ok(api, "/column/info") == {"columnMappings": column_mappings()}


# --------------------------------------------------------------------------- event log


def leaf_changes(obj: Any) -> set[tuple[str, str, str]]:
    """(field, oldValue, newValue) of every dict carrying old and new values, anywhere."""
    out: set[tuple[str, str, str]] = set()
    if isinstance(obj, dict):
        if "oldValue" in obj and "newValue" in obj:
            name = obj.get("fieldName", obj.get("field"))
            out.add((json.dumps(name), json.dumps(obj["oldValue"]), json.dumps(obj["newValue"])))
        for value in obj.values():
            if isinstance(value, (dict, list)):
                out |= leaf_changes(value)
    elif isinstance(obj, list):
        for item in obj:
            out |= leaf_changes(item)
    return out


def test_changes_object(srv: SandboxServer, api: requests.Session, ds: Dataset) -> None:
    default = ok(api, "/event-log", limit=10000)["eventLogEntries"]
    assert all(isinstance(e["changes"], list) for e in default)
    srv.configure(dialects=["changes_object"])
    entries = ok(api, "/event-log", limit=10000)["eventLogEntries"]
    assert len(entries) == len(default) == len(ds.event_log)
    keys = {"category", "entityId", "fieldName", "nestedChanges", "simpleChanges"}
    for new, old in zip(entries, default, strict=True):
        changes = new["changes"]
        assert isinstance(changes, dict) and set(changes) == keys
        assert changes["category"] == old["category"]
        assert changes["entityId"] == old["entityId"]
        assert isinstance(changes["nestedChanges"], list)
        simple = changes["simpleChanges"]
        assert all(set(sc) == {"fieldName", "oldValue", "newValue"} for sc in simple)
        assert leaf_changes(simple) == leaf_changes(old["changes"]), "same change data"
        assert changes["fieldName"] == (simple[0]["fieldName"] if simple else None)
        rest = {k: v for k, v in new.items() if k not in ("changes", "id")}
        assert rest == {k: v for k, v in old.items() if k not in ("changes", "id")}
    assert sum(bool(e["changes"]["simpleChanges"]) for e in entries) > 10
    assert any(e["changes"]["simpleChanges"] == [] for e in entries)  # CREATE entries
    ids = [e["id"] for e in entries]
    assert all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == len(ids), "one id per entry"
    assert [e["id"] for e in ok(api, "/event-log", limit=10000)["eventLogEntries"]] == ids
    paged = ok(api, "/event-log", limit=5, offset=10, direction="ASC")["eventLogEntries"]
    assert [e["id"] for e in paged] == ids[::-1][10:15]
    with SandboxServer(ds, rate_limit=None, dialects=["changes_object"]) as other:
        again = requests.get(
            other.url + "/event-log",
            params={"limit": 10000},
            headers={"cwauth-token": login(other)},
            timeout=30,
        ).json()["eventLogEntries"]
    assert [e["id"] for e in again] == ids, "ids are deterministic"


def test_changes_object_from_the_flat_reading() -> None:
    from voluum_sandbox.dialects import changes_as_object

    entry = {
        "editTime": 5,
        "actionType": "CHANGE",
        "category": "OFFER",
        "entityId": "e-1",
        "changes": [
            {"field": "url", "oldValue": "a", "newValue": "b"},
            {"field": "name", "oldValue": "x", "newValue": "y"},
        ],
    }
    out = changes_as_object(entry, 3, 7)
    assert out["changes"] == {
        "category": "OFFER",
        "entityId": "e-1",
        "fieldName": "url",
        "nestedChanges": [],
        "simpleChanges": [
            {"fieldName": "url", "oldValue": "a", "newValue": "b"},
            {"fieldName": "name", "oldValue": "x", "newValue": "y"},
        ],
    }
    assert isinstance(out["id"], str) and out["id"] == changes_as_object(entry, 3, 7)["id"]
    assert out["id"] != changes_as_object(entry, 4, 7)["id"]
    assert entry["changes"][0]["field"] == "url" and "id" not in entry, "input untouched"
    assert changes_as_object({**entry, "id": "own"}, 3, 7)["id"] == "own"


def test_evlog_newest_first(srv: SandboxServer, api: requests.Session) -> None:
    asc = [
        e["editTime"]
        for e in ok(api, "/event-log", direction="ASC", limit=10000)["eventLogEntries"]
    ]
    assert asc == sorted(asc) and asc != sorted(asc, reverse=True)
    srv.configure(dialects=["evlog_newest_first"])
    for direction in ("ASC", "asc", "DESC", "sideways"):
        body = ok(api, "/event-log", direction=direction, limit=10000)
        times = [e["editTime"] for e in body["eventLogEntries"]]
        assert times == sorted(asc, reverse=True)
        assert body["totalRows"] == len(asc)
    newest = ok(api, "/event-log", limit=10000)["eventLogEntries"]
    page = ok(api, "/event-log", direction="ASC", limit=5, offset=5)["eventLogEntries"]
    assert page == newest[5:10]


def test_evlog_epoch_only(srv: SandboxServer, api: requests.Session) -> None:
    times = sorted(e["editTime"] for e in ok(api, "/event-log", limit=10000)["eventLogEntries"])
    pivot = times[len(times) // 2]
    iso = "2026-02-21T00:00:00Z"
    for value in (iso, "2026-02-21", str(pivot)):
        assert get(api, "/event-log", **{"from": value}).status_code == 200
    srv.configure(dialects=["evlog_epoch_only"])
    body = ok(api, "/event-log", **{"from": pivot, "limit": 10000})
    assert body["totalRows"] == sum(1 for t in times if t >= pivot)
    body = ok(api, "/event-log", **{"from": 0, "to": pivot, "limit": 10000})
    assert body["totalRows"] == sum(1 for t in times if t < pivot)
    for name in ("from", "to"):
        for value in (iso, "2026-02-21", "2026-02-21T00:00:00"):
            assert_error(
                get(api, "/event-log", **{name: value}),
                400,
                "BAD_REQUEST",
                f"Invalid time format of parameter '{name}': {value}",
            )


def test_evlog_iso_only(srv: SandboxServer, api: requests.Session) -> None:
    times = sorted(e["editTime"] for e in ok(api, "/event-log", limit=10000)["eventLogEntries"])
    assert get(api, "/event-log", **{"from": 0}).status_code == 200
    srv.configure(dialects=["evlog_iso_only"])
    cut = 1771545600000  # 2026-02-20T00:00:00Z
    body = ok(api, "/event-log", **{"from": "2026-02-20T00:00:00Z", "limit": 10000})
    assert body["totalRows"] == sum(1 for t in times if t >= cut) > 0
    body = ok(api, "/event-log", **{"to": "2026-02-20", "limit": 10000})
    assert body["totalRows"] == sum(1 for t in times if t < cut) > 0
    for name in ("from", "to"):
        for value in ("0", str(times[3]), "-5"):
            assert_error(
                get(api, "/event-log", **{name: value}),
                400,
                "BAD_REQUEST",
                f"Invalid time format of parameter '{name}': {value}",
            )


# --------------------------------------------------------------------------- groupBy


@pytest.mark.parametrize(
    ("dialect", "accepted", "refused"),
    [
        (
            "groupby_ids",
            [
                "trafficSourceId",
                "traffic_source_id",
                "affiliateNetworkId",
                "countryCode",
                "country-code",
            ],
            ["traffic-source", "affiliate-network", "country", "trafficSource", "countryName"],
        ),
        (
            "groupby_dashed",
            ["traffic-source", "affiliate-network", "country-code"],
            [
                "trafficSourceId",
                "traffic_source_id",
                "affiliateNetworkId",
                "countryCode",
                "country",
            ],
        ),
    ],
)
def test_groupby_spellings(
    srv: SandboxServer, api: requests.Session, dialect: str, accepted: list, refused: list
) -> None:
    defaults = {g: report(api, groupBy=g) for g in accepted + refused}
    srv.configure(dialects=[dialect])
    for g in accepted:
        assert report(api, groupBy=g) == defaults[g], g
        assert report(api, groupBy=["campaign", g])["totalRows"] > 0
    for g in refused:
        assert defaults[g]["totalRows"] > 0, "valid by default"
        for groups in ([g], ["campaign", g], ["day", "offer", g]):
            error = assert_error(
                get(api, "/report", **WINDOW, groupBy=groups),
                400,
                "INVALID_QUERY",
                f"Invalid groupBy value '{g}'",
            )
            assert error["messages"] == [g]
    for other in (
        "campaign",
        "campaignId",
        "offer",
        "lander",
        "flow",
        "os",
        "day",
        "hour",
        "custom-variable-1",
    ):
        assert report(api, groupBy=other)["totalRows"] > 0, other


def test_flow_report_broken(srv: SandboxServer, api: requests.Session) -> None:
    spellings = ["flow", "flowId", "flow_id", "Flow", "flowName"]
    for g in spellings:
        assert report(api, groupBy=g)["totalRows"] > 0
    srv.configure(dialects=["flow_report_broken"])
    for g in spellings:
        for groups in ([g], ["campaign", g], [g, "day"]):
            assert_error(
                get(api, "/report", **WINDOW, groupBy=groups),
                400,
                "INVALID_QUERY",
                f"Invalid groupBy value '{g}'",
            )
    assert report(api, groupBy=["campaign", "lander", "day"])["totalRows"] > 0
    assert report(api, filter1="flow", filter1Value="x")["totalRows"] == 0  # filters unchanged


# --------------------------------------------------------------------------- sort


def test_sort_no_ids(srv: SandboxServer, api: requests.Session) -> None:
    id_sorts = [
        ({"groupBy": "campaign"}, "campaignId"),
        ({"groupBy": ["campaign", "traffic-source"]}, "trafficSourceId"),
        ({"groupBy": "country-code"}, "countryCode"),
        ({"groupBy": ["offer", "affiliate-network"]}, "affiliateNetworkId"),
    ]
    for params, sort in id_sorts:
        assert report(api, **params, sort=sort)["totalRows"] > 0
    assert ok(api, "/report/conversions", **CONV_WINDOW, sort="clickId")["totalRows"] > 0
    srv.configure(dialects=["sort_no_ids"])
    for params, sort in id_sorts:
        error = assert_error(
            get(api, "/report", **WINDOW, **params, sort=sort),
            400,
            "INVALID_QUERY",
            f"Invalid sort column: {sort}",
        )
        assert error["messages"] == [sort]
    for sort in ("clickId", "campaignId", "countryCode", "offerId"):
        assert_error(
            get(api, "/report/conversions", **CONV_WINDOW, sort=sort),
            400,
            "INVALID_QUERY",
            f"Invalid sort column: {sort}",
        )
    for sort in ("visits", "revenue", "campaignName", "day"):
        assert report(api, groupBy=["campaign", "day"], sort=sort)["totalRows"] > 0
    for sort in ("postbackTimestamp", "revenue", "campaignName"):
        assert ok(api, "/report/conversions", **CONV_WINDOW, sort=sort)["totalRows"] > 0


# --------------------------------------------------------------------------- paging


def test_no_paging_echo(srv: SandboxServer, api: requests.Session) -> None:
    assert {"limit", "offset"} <= set(report(api, limit=3))
    assert {"limit", "offset"} <= set(ok(api, "/report/conversions", **CONV_WINDOW, limit=3))
    full = report(api, groupBy=["campaign", "day"], limit=1000)["rows"]
    srv.configure(dialects=["no_paging_echo"])
    page = report(api, groupBy=["campaign", "day"], limit=3, offset=2)
    assert "limit" not in page and "offset" not in page
    assert page["rows"] == full[2:5]
    conv = ok(api, "/report/conversions", **CONV_WINDOW, limit=3)
    assert "limit" not in conv and "offset" not in conv and len(conv["rows"]) == 3
    log = ok(api, "/event-log", limit=3)
    assert "limit" not in log and "offset" not in log and len(log["eventLogEntries"]) == 3


def test_page_cap(srv: SandboxServer, api: requests.Session) -> None:
    q = {"groupBy": ["campaign", "hour"], "include": "ALL"}
    full = report(api, **q, limit=1000)
    total = full["totalRows"]
    assert total > 60
    assert len(report(api, **q, limit=200)["rows"]) == min(200, total)
    conv_total = ok(api, "/report/conversions", **CONV_WINDOW)["totalRows"]
    assert conv_total > 60
    assert len(ok(api, "/report/conversions", **CONV_WINDOW, limit=200)["rows"]) > 50
    log_total = ok(api, "/event-log")["totalRows"]
    assert log_total > 60
    assert len(ok(api, "/event-log", limit=80)["eventLogEntries"]) == 80
    srv.configure(dialects=["page_cap"])
    page = report(api, **q, limit=200)
    assert len(page["rows"]) == 50 and page["totalRows"] == total and page["limit"] == 200
    assert page["rows"] == full["rows"][:50] and page["totals"] == full["totals"]
    second = report(api, **q, limit=200, offset=50)
    assert second["rows"] == full["rows"][50:100] and second["offset"] == 50
    unasked = report(api, **q)
    assert len(unasked["rows"]) == 50 and unasked["limit"] == 100
    small = report(api, **q, limit=30)
    assert len(small["rows"]) == 30 and small["limit"] == 30
    assert_error(get(api, "/report", **WINDOW, **q, limit="x"), 400, "BAD_REQUEST")
    conv = ok(api, "/report/conversions", **CONV_WINDOW, limit=200)
    assert len(conv["rows"]) == 50 and conv["totalRows"] == conv_total and conv["limit"] == 200
    log = ok(api, "/event-log", limit=80)
    assert len(log["eventLogEntries"]) == 50 and log["totalRows"] == log_total
    assert len(ok(api, "/event-log")["eventLogEntries"]) == 50
    srv.configure(dialects=["page_cap", "no_paging_echo"])
    both = report(api, **q, limit=200)
    assert len(both["rows"]) == 50 and "limit" not in both


# --------------------------------------------------------------------------- columns


def test_column_info_lists_every_report_field(api: requests.Session) -> None:
    listed = {c["key"] for c in ok(api, "/column/info")["columnMappings"]}
    carried: set[str] = set()
    for dim in DIMENSIONS:
        rows = report(api, groupBy=dim, include="ALL", limit=5)["rows"]
        assert rows, dim
        carried |= set(rows[0])
    assert carried <= listed, sorted(carried - listed)
    assert {"campaignName", "trafficSourceName", "day", "hour", "customConversions1"} <= carried


def test_strict_columns(srv: SandboxServer, api: requests.Session) -> None:
    listed = [c["key"] for c in ok(api, "/column/info")["columnMappings"]]
    conv_row = ok(api, "/report/conversions", **CONV_WINDOW, limit=1)["rows"][0]
    assert report(api, columns="bogus")["totalRows"] > 0
    assert ok(api, "/report/conversions", **CONV_WINDOW, columns="visits")["totalRows"] > 0
    srv.configure(dialects=["strict_columns"])
    assert report(api, columns=["visits", "campaignName"])["totalRows"] > 0
    assert report(api, columns=",".join(listed), groupBy=["campaign", "hour"])["totalRows"] > 0
    for dim in DIMENSIONS:  # asking for exactly the fields rows carry never fails
        row = report(api, groupBy=dim, include="ALL", limit=1)["rows"][0]
        assert report(api, groupBy=dim, include="ALL", columns=",".join(row))["totalRows"] > 0
    for name in ("columns", "column"):
        for bad in ("bogus", "Visits", "customConversions9"):
            error = assert_error(
                get(api, "/report", **WINDOW, **{name: ["visits", bad]}),
                400,
                "INVALID_QUERY",
                f"Invalid column '{bad}'",
            )
            assert error["messages"] == [bad]
    conv = ok(api, "/report/conversions", **CONV_WINDOW, columns=",".join(conv_row))
    assert conv["totalRows"] > 0
    for bad in ("visits", "bogus", "cost"):
        assert_error(
            get(api, "/report/conversions", **CONV_WINDOW, columns=["clickId", bad]),
            400,
            "INVALID_QUERY",
            f"Invalid column '{bad}'",
        )


def test_no_column_info(srv: SandboxServer, api: requests.Session) -> None:
    assert ok(api, "/column/info")["columnMappings"]
    srv.configure(dialects=["no_column_info"])
    assert_error(get(api, "/column/info"), 404, "NOT_FOUND")
    assert report(api)["columnMappings"], "reports are unchanged"
    srv.configure(dialects=[])
    assert ok(api, "/column/info")["columnMappings"]


# --------------------------------------------------------------------------- rows


def test_hour_text(srv: SandboxServer, api: requests.Session) -> None:
    q = {"groupBy": ["campaign", "hour"], "include": "ALL", "limit": 1000}
    default = report(api, **q)
    assert all(isinstance(r["hour"], int) for r in default["rows"])
    srv.configure(dialects=["hour_text"])
    texts = report(api, **q)
    assert texts["totalRows"] == default["totalRows"] and texts["totals"] == default["totals"]
    for new, old in zip(texts["rows"], default["rows"], strict=True):
        assert re.fullmatch(r"\d\d:00", new["hour"])
        assert new["hour"] == f"{old['hour']:02d}:00"
        assert {k: v for k, v in new.items() if k != "hour"} == {
            k: v for k, v in old.items() if k != "hour"
        }
    assert "07:00" in {r["hour"] for r in texts["rows"]}
    assert "hour" not in report(api, groupBy="campaign")["rows"][0]


def test_visits_without_click_id(srv: SandboxServer, api: requests.Session, ds: Dataset):
    cid = ds.campaigns[0]["id"]
    visits = ok(api, f"/report/live/visits/{cid}", limit=20)["rows"]
    clicks = ok(api, f"/report/live/clicks/{cid}", limit=20)["rows"]
    assert all("clickId" in r for r in visits)
    srv.configure(dialects=["visits_without_click_id"])
    bare = ok(api, f"/report/live/visits/{cid}", limit=20)["rows"]
    assert len(bare) == len(visits) == 20
    for new, old in zip(bare, visits, strict=True):
        assert "clickId" not in new
        assert new["externalId"] == old["externalId"] and new["timestamp"] == old["timestamp"]
        assert new == {k: v for k, v in old.items() if k != "clickId"}
    assert ok(api, f"/report/live/clicks/{cid}", limit=20)["rows"] == clicks


# --------------------------------------------------------------------------- lose_row_day


@pytest.mark.parametrize(
    "groups",
    [["campaign", "day"], ["day", "campaignId"], ["campaign_id", "date"]],
)
@pytest.mark.parametrize("order", [{}, {"sort": "visits", "direction": "DESC"}])
def test_lose_row_day(srv: SandboxServer, api: requests.Session, groups: list, order: dict):
    q = {"groupBy": groups, **order, "limit": 1000}
    default = report(api, **q)
    lost = next(i for i, r in enumerate(default["rows"]) if r["day"] == LOST_DAY)
    srv.configure(lose_row_day=LOST_DAY)
    answer = report(api, **q)
    assert answer["totalRows"] == default["totalRows"] - 1
    assert answer["totals"] == default["totals"], "totals still count the lost row"
    expected = default["rows"][:lost] + default["rows"][lost + 1 :]
    assert answer["rows"] == expected
    assert (
        sum(r["day"] == LOST_DAY for r in answer["rows"])
        == sum(r["day"] == LOST_DAY for r in default["rows"]) - 1
    )
    paged = everything(api, "/report", "rows", **WINDOW, groupBy=groups, **order)
    assert paged == expected


def test_lose_row_day_spares_other_queries(srv: SandboxServer, api: requests.Session) -> None:
    queries = [
        {"groupBy": ["campaign", "hour"]},
        {"groupBy": ["offer", "day"]},
        {"groupBy": "campaign"},
        {"groupBy": "day"},
        {"groupBy": ["campaign", "day", "os"]},
        {"groupBy": ["traffic-source", "day"]},
    ]
    defaults = [report(api, **q, limit=1000) for q in queries]
    srv.configure(lose_row_day=LOST_DAY)
    for q, expected in zip(queries, defaults, strict=True):
        assert report(api, **q, limit=1000) == expected, q
    pairs = {(r["campaignId"], r["day"]) for r in defaults[4]["rows"]}
    assert report(api, groupBy=["campaign", "day"])["totalRows"] == len(pairs) - 1


# --------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    "argv",
    [
        ["--dialect", "bogus"],
        ["--dialect", "groupby_ids", "--dialect", "groupby_dashed"],
        ["--lose-row-day", "tomorrow"],
    ],
)
def test_cli_refuses_bad_dialects(argv: list, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert "voluum-sandbox: error" in capsys.readouterr().err


def test_cli_parses_dialects() -> None:
    args = parse_args(
        ["--dialect", "hour_text", "--dialect", "page_cap", "--lose-row-day", "2026-02-22"]
    )
    assert args.dialects == ["hour_text", "page_cap"]
    assert args.lose_row_day == date(2026, 2, 22)
    plain = parse_args([])
    assert plain.dialects == [] and plain.lose_row_day is None


def test_cli_serves_dialects() -> None:
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
            "--rate-limit",
            "0",
            "--dialect",
            "no_column_info",
            "--dialect",
            "hour_text",
            "--lose-row-day",
            "2026-03-02",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(5))
        token = requests.post(
            lines["url"] + "/auth/access/session",
            json={"accessId": lines["access_id"], "accessKey": lines["access_key"]},
            timeout=10,
        ).json()["token"]
        s = requests.Session()
        s.headers["cwauth-token"] = token
        s.base = lines["url"]  # type: ignore[attr-defined]
        assert_error(get(s, "/column/info"), 404, "NOT_FOUND")
        window = {"from": "2026-03-01", "to": "2026-03-03", "include": "ALL"}
        hours = ok(s, "/report", **window, groupBy="hour")["rows"]
        assert hours and all(re.fullmatch(r"\d\d:00", r["hour"]) for r in hours)
        detailed = ok(s, "/report", **window, groupBy=["campaign", "day", "os"], limit=1000)
        pairs = {(r["campaignId"], r["day"]) for r in detailed["rows"]}
        days = ok(s, "/report", **window, groupBy=["campaign", "day"], limit=1000)
        assert days["totalRows"] == len(pairs) - 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
