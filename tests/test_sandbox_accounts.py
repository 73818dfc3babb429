"""Several accounts on one sandbox port, and the rate limit's scope (HTTP level)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date, datetime
from typing import Any

import pytest
import requests

from tests.truth import assert_conversions_match, assert_entities_match, assert_rows_match
from voluum_sandbox import KNOBS, Dataset, SandboxServer
from voluum_sandbox.accounts import Account
from voluum_sandbox.cli import parse_args

START = date(2026, 2, 20)
FROM, TO = datetime(2026, 2, 20), datetime(2026, 2, 23)
WINDOW = {"from": "2026-02-20", "to": "2026-02-23", "include": "ALL", "limit": 100_000}
ENTITY_KINDS = ("workspace", "traffic-source", "affiliate-network", "offer", "lander", "flow")
LISTS = {
    "campaign": "campaigns",
    "offer": "offers",
    "lander": "landers",
    "flow": "flows",
    "traffic-source": "trafficSources",
    "affiliate-network": "affiliateNetworks",
}
AUTH_KEYS = {"error", "typeName", "typeCode", "status"}


@pytest.fixture(scope="module")
def datasets() -> list[Dataset]:
    return [
        Dataset(seed=seed, start=START, days=3, campaigns=n)
        for seed, n in ((21, 3), (22, 4), (23, 5))
    ]


@pytest.fixture(scope="module")
def srv(datasets: list[Dataset]):
    with SandboxServer(accounts=datasets, rate_limit=None) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(srv: SandboxServer):
    srv.configure(rate_limit=None, rate_limit_scope="token", dialects=())
    srv.clear_requests()
    yield
    srv.configure(rate_limit=None, rate_limit_scope="token", dialects=())


def login(srv: SandboxServer, account: Account) -> requests.Session:
    r = requests.post(
        srv.url + "/auth/access/session",
        json={"accessId": account.access_id, "accessKey": account.access_key},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    s = requests.Session()
    s.headers["cwauth-token"] = r.json()["token"]
    return s


def ok(s: requests.Session, url: str, **params: Any) -> dict:
    r = s.get(url, params=params, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


# --------------------------------------------------------------------------- the Python API


def test_accounts_api(srv: SandboxServer, datasets: list[Dataset]) -> None:
    assert [a.index for a in srv.accounts] == [0, 1, 2]
    assert [a.name for a in srv.accounts] == ["account-1", "account-2", "account-3"]
    assert [a.dataset for a in srv.accounts] == datasets
    assert srv.dataset is datasets[0]
    assert (srv.access_id, srv.access_key) == (
        srv.accounts[0].access_id,
        srv.accounts[0].access_key,
    )
    for field in ("access_id", "access_key", "email", "password"):
        assert len({getattr(a, field) for a in srv.accounts}) == 3, field
    assert srv.accounts[1].credentials == {
        "name": "account-2",
        "access_id": datasets[1].access_id,
        "access_key": datasets[1].access_key,
    }
    assert "rate_limit_scope" in KNOBS


def test_no_two_accounts_share_an_entity_or_click_id(datasets: list[Dataset]) -> None:
    seen: dict[str, int] = {}
    for i, ds in enumerate(datasets):
        ids = {e["id"] for kind in (*ENTITY_KINDS, "campaign") for e in ds.entities(kind)}
        ids |= {c["clickId"] for c in ds.conversions_between(FROM, TO)}
        for x in ids:
            assert seen.setdefault(x, i) == i, f"{x} is in accounts {seen[x]} and {i}"


def test_single_dataset_form_unchanged(datasets: list[Dataset]) -> None:
    one = SandboxServer(datasets[0])
    assert len(one.accounts) == 1
    assert one.accounts[0].dataset is datasets[0]
    assert one.accounts[0].email == datasets[0].email == one.email
    assert one.rate_limit_scope == "token"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"accounts": []},
        {"accounts": [Dataset(seed=5, days=1, campaigns=1)] * 2},
        {"accounts": ["not a dataset"]},
        {"dataset": Dataset(seed=5, days=1, campaigns=1), "accounts": [Dataset(seed=6, days=1)]},
        {"rate_limit_scope": "user"},
    ],
)
def test_bad_accounts_or_scope_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SandboxServer(**kwargs)


# --------------------------------------------------------------------------- each account's data


@pytest.mark.parametrize("index", [0, 1, 2])
def test_each_token_sees_only_its_account(srv: SandboxServer, index: int) -> None:
    account = srv.accounts[index]
    ds = account.dataset
    s = login(srv, account)
    for kind, wrapper in LISTS.items():
        items = ok(s, srv.url + f"/{kind}", includeDeleted="true")[wrapper]
        assert_entities_match(items, ds, kind)
    workspaces = ok(s, srv.url + "/multiuser/workspace")["workspaces"]
    assert_entities_match(workspaces, ds, "workspace")
    group_by = ["campaign", "day"]
    rows = ok(s, srv.url + "/report", **WINDOW, groupBy=group_by)["rows"]
    truth = ds.truth_rows(group_by, FROM, TO, include="ALL")
    assert_rows_match(rows, truth, lambda r: Dataset.row_key(r, group_by))
    conversions = ok(s, srv.url + "/report/conversions", **WINDOW)["rows"]
    assert_conversions_match(conversions, ds, FROM, TO, "Etc/GMT")
    events = ok(s, srv.url + "/event-log", limit=10_000)["eventLogEntries"]
    assert len(events) == len(ds.event_log)
    other = srv.accounts[(index + 1) % 3].dataset.entities("campaign")[0]["id"]
    for path in (f"/campaign/{other}", f"/report/live/clicks/{other}"):
        r = s.get(srv.url + path, timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    own = ds.entities("campaign")[0]["id"]
    assert ok(s, srv.url + f"/campaign/{own}")["id"] == own


def test_email_logins_per_account(srv: SandboxServer) -> None:
    for account in srv.accounts:
        r = requests.post(
            srv.url + "/auth/session",
            json={"email": account.email, "password": account.password},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        s = requests.Session()
        s.headers["cwauth-token"] = r.json()["token"]
        campaigns = ok(s, srv.url + "/campaign", includeDeleted="true")["campaigns"]
        assert_entities_match(campaigns, account.dataset, "campaign")


@pytest.mark.parametrize(
    "body",
    [
        lambda a, b: {"accessId": a.access_id, "accessKey": b.access_key},
        lambda a, b: {"accessId": a.access_id, "accessKey": "sandbox-key-" + "0" * 32},
        lambda a, b: {"accessId": "sandbox-id-99", "accessKey": a.access_key},
    ],
)
def test_wrong_key_is_refused(srv: SandboxServer, body: Any) -> None:
    r = requests.post(srv.url + "/auth/access/session", json=body(*srv.accounts[:2]), timeout=10)
    assert r.status_code == 401
    data = r.json()
    assert set(data) == AUTH_KEYS
    assert data["error"]["code"] == "BAD_CREDENTIALS"
    assert (data["typeName"], data["status"]) == ("badCredentials", "UNAUTHORIZED")
    r = requests.post(
        srv.url + "/auth/session",
        json={"email": srv.accounts[1].email, "password": srv.accounts[2].password},
        timeout=10,
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "BAD_CREDENTIALS"


def test_request_log_names_the_account(srv: SandboxServer) -> None:
    sessions = [login(srv, a) for a in srv.accounts]
    for i, s in enumerate(sessions):
        for _ in range(i + 1):
            ok(s, srv.url + "/campaign")
    requests.get(srv.url + "/campaign", timeout=10)  # no token: no account
    log = srv.requests
    logins = [e for e in log if e["path"] == "/auth/access/session"]
    assert [e["account"] for e in logins] == [0, 1, 2]
    data = [e for e in log if e["path"] == "/campaign"]
    assert [e["account"] for e in data] == [0, 1, 1, 2, 2, 2, None]
    assert all(e["client"] == "127.0.0.1" for e in log)
    stats = srv.stats()
    assert stats["by_account"] == {0: 2, 1: 3, 2: 4}
    assert stats["max_per_second_all"] >= 3
    assert set(stats["max_per_second_by_account"]) == {0, 1, 2}
    admin = requests.get(srv.url + "/__sandbox__/stats", timeout=10).json()
    assert admin["by_account"] == {"0": 2, "1": 3, "2": 4}


# --------------------------------------------------------------------------- the rate limit's scope


def burst(srv: SandboxServer, per_account: int) -> list[requests.Response]:
    sessions = [login(srv, a) for a in srv.accounts]
    srv.clear_requests()
    out = []
    for _ in range(per_account):
        out.extend(s.get(srv.url + "/campaign", timeout=10) for s in sessions)
    return out


def test_address_scope_shares_one_budget(srv: SandboxServer) -> None:
    srv.configure(rate_limit=5, rate_limit_scope="address")
    answers = burst(srv, 4)  # 12 requests, 4 per token, well within a second
    refused = [r for r in answers if r.status_code == 429]
    assert refused, "the accounts together exceed 5 per second"
    assert all(r.status_code in (200, 429) for r in answers)
    assert all(r.json()["error"]["code"] == "NUMBER_OF_REQUEST_FOR_IP_EXCEEDED" for r in refused)
    assert srv.stats()["max_accepted_per_second_all"] <= 5


def test_token_scope_gives_each_token_its_budget(srv: SandboxServer) -> None:
    srv.configure(rate_limit=5, rate_limit_scope="token")
    answers = burst(srv, 4)
    assert [r.status_code for r in answers] == [200] * 12
    stats = srv.stats()
    assert stats["max_per_second_all"] > 5 >= max(stats["max_per_second"].values())


def test_scope_via_admin_api(srv: SandboxServer) -> None:
    url = srv.url + "/__sandbox__/configure"
    r = requests.post(url, json={"rate_limit_scope": "address"}, timeout=10)
    assert r.status_code == 200 and srv.rate_limit_scope == "address"
    r = requests.post(url, json={"rate_limit_scope": "everyone"}, timeout=10)
    assert r.status_code == 400 and srv.rate_limit_scope == "address"
    with pytest.raises(ValueError):
        srv.configure(rate_limit_scope="everyone")


# --------------------------------------------------------------------------- knobs and admin API


def test_knobs_apply_to_every_account(srv: SandboxServer) -> None:
    srv.configure(dialects=["hour_text"])
    for account in srv.accounts:
        s = login(srv, account)
        rows = ok(s, srv.url + "/report", **WINDOW, groupBy="hour")["rows"]
        assert rows and all(isinstance(r["hour"], str) for r in rows)
    sessions = [login(srv, a) for a in srv.accounts]
    srv.expire_tokens()
    for s in sessions:
        r = s.get(srv.url + "/campaign", timeout=10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "SESSION_EXPIRED"


def test_admin_truth_per_account(srv: SandboxServer) -> None:
    query = {"from": "2026-02-20", "to": "2026-02-23"}
    for account in srv.accounts:
        r = requests.get(
            srv.url + "/__sandbox__/truth", params={**query, "account": account.index}, timeout=30
        )
        assert r.status_code == 200, r.text
        assert r.json()["totals"] == account.dataset.truth_totals(FROM, TO)
    r = requests.get(srv.url + "/__sandbox__/truth", params={**query, "account": 3}, timeout=10)
    assert r.status_code == 400


def test_admin_add_data_per_account_and_for_all() -> None:
    datasets = [Dataset(seed=s, start=START, days=2, campaigns=2) for s in (31, 32)]
    with SandboxServer(accounts=datasets, rate_limit=None) as server:
        url = server.url + "/__sandbox__/add-data"
        before = [ds.n_events for ds in datasets]
        r = requests.post(url, json={"at": "2026-02-21T10:00:00Z", "visits": 4, "account": 1})
        assert r.status_code == 200, r.text
        assert sum(v["visits"] for v in r.json()["visits"]) == 4
        assert datasets[0].n_events == before[0] and datasets[1].n_events > before[1]
        r = requests.post(url, json={"at": "2026-02-21T11:00:00Z", "visits": 3})
        assert r.status_code == 200, r.text
        answers = r.json()["accounts"]
        assert [sum(v["visits"] for v in a["visits"]) for a in answers] == [3, 3]
        own = datasets[0].entities("campaign", include_deleted=False)[0]["id"]
        r = requests.post(
            url, json={"at": "2026-02-21T12:00:00Z", "visits": 2, "campaign_ids": [own]}
        )
        assert r.status_code == 200, r.text
        answers = r.json()["accounts"]
        assert len(answers) == 1 and {v["campaignId"] for v in answers[0]["visits"]} == {own}
        r = requests.post(url, json={"at": "2026-02-21T12:00:00Z", "visits": 1, "account": 2})
        assert r.status_code == 400


# --------------------------------------------------------------------------- CLI


def test_cli_parses_accounts(capsys: pytest.CaptureFixture) -> None:
    args = parse_args(["--accounts", "3", "--rate-limit-scope", "address"])
    assert (args.accounts, args.rate_limit_scope) == (3, "address")
    plain = parse_args([])
    assert (plain.accounts, plain.rate_limit_scope) == (1, "token")
    for argv in (["--accounts", "0"], ["--rate-limit-scope", "user"]):
        with pytest.raises(SystemExit) as exc:
            parse_args(argv)
        assert exc.value.code == 2
    assert "voluum-sandbox: error" in capsys.readouterr().err


def test_cli_serves_accounts() -> None:
    argv = ["--port", "0", "--days", "2", "--campaigns", "2", "--start", "2026-03-01"]
    argv += ["--seed", "40", "--accounts", "3", "--rate-limit", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "voluum_sandbox", *argv],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(5 + 4 * 3 + 1))
        assert lines["access_id"] == lines["account_1_access_id"] == "sandbox-id-40"
        accounts = json.loads(lines["accounts"])
        assert [a["name"] for a in accounts] == ["account-1", "account-2", "account-3"]
        campaign_ids = []
        for n, item in enumerate(accounts, start=1):
            assert item["access_id"] == lines[f"account_{n}_access_id"] == f"sandbox-id-{39 + n}"
            assert item["access_key"] == lines[f"account_{n}_access_key"]
            token = requests.post(
                lines["url"] + "/auth/access/session",
                json={"accessId": item["access_id"], "accessKey": item["access_key"]},
                timeout=10,
            ).json()["token"]
            r = requests.get(
                lines["url"] + "/campaign", headers={"cwauth-token": token}, timeout=10
            )
            campaign_ids.append({c["id"] for c in r.json()["campaigns"]})
            r = requests.post(
                lines["url"] + "/auth/session",
                json={
                    "email": lines[f"account_{n}_email"],
                    "password": lines[f"account_{n}_password"],
                },
                timeout=10,
            )
            assert r.status_code == 200
        assert all(campaign_ids) and not set.intersection(*campaign_ids)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
