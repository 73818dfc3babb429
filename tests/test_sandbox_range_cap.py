"""The sandbox's ``range_cap`` knob: report windows longer than N days are refused (HTTP level)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import date
from typing import Any

import pytest
import requests

from tests.helpers import sandbox_api
from voluum_sandbox import KNOBS, Dataset, SandboxServer
from voluum_sandbox.cli import parse_args
from voluum_sandbox.range_cap import DEFAULT_WORDING, RANGE_CAP_WORDINGS

ERROR_KEYS = {"code", "description", "messages", "webRequestId", "time"}
CAP = 3
ENDPOINTS = ("/report", "/report/conversions")
# Every wording: (code, description) for a cap of 3 days, as the README lists them.
WORDINGS = {
    "too_long": ("BAD_REQUEST", "Time range is too long: the maximum is 3 days"),
    "apart": ("INVALID_QUERY", "'from' and 'to' must not be more than 3 days apart"),
    "period": ("BAD_REQUEST", "Maximum report period exceeded (3 days)"),
    "exceeded": (
        "MAX_TIME_RANGE_EXCEEDED",
        "The requested time range exceeds the maximum of 3 days",
    ),
    "max_period": (
        "INVALID_QUERY",
        "Maximum period exceeded: 'from' and 'to' may be at most 3 days apart",
    ),
}


@pytest.fixture(scope="module")
def ds() -> Dataset:
    # 2026-03-08: New York moves its clocks forward.
    return Dataset(seed=11, start=date(2026, 3, 4), days=8, campaigns=3)


@pytest.fixture(scope="module")
def srv(ds: Dataset):
    with SandboxServer(ds, rate_limit=None) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(srv: SandboxServer):
    srv.configure(range_cap=None, range_cap_wording=DEFAULT_WORDING)
    yield
    srv.configure(range_cap=None, range_cap_wording=DEFAULT_WORDING)


@pytest.fixture(scope="module")
def api(srv: SandboxServer) -> requests.Session:
    return sandbox_api(srv)


def get(api: requests.Session, path: str, **params: Any) -> requests.Response:
    return api.get(api.base + path, params=params, timeout=60)  # type: ignore[attr-defined]


def assert_refused(r: requests.Response, code: str, description: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == code
    assert body["error"]["description"] == description
    assert body["error"]["messages"] == []


def test_knob_names_and_wordings_are_exported() -> None:
    assert {"range_cap", "range_cap_wording"} <= set(KNOBS)
    assert {k: (c, t.format(n=CAP)) for k, (c, t) in RANGE_CAP_WORDINGS.items()} == WORDINGS
    assert DEFAULT_WORDING == "too_long"


@pytest.mark.parametrize("path", ENDPOINTS)
def test_off_by_default(ds: Dataset, srv: SandboxServer, api: requests.Session, path: str) -> None:
    assert SandboxServer(ds).range_cap is None
    assert SandboxServer(ds).range_cap_wording == DEFAULT_WORDING
    assert srv.range_cap is None
    r = get(api, path, **{"from": "2026-03-04", "to": "2026-03-12"})
    assert r.status_code == 200, r.text
    assert r.json()["totalRows"] > 0


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("wording", sorted(WORDINGS))
def test_exactly_n_days_served_one_hour_more_refused(
    srv: SandboxServer, api: requests.Session, path: str, wording: str
) -> None:
    srv.configure(range_cap=CAP, range_cap_wording=wording)
    exact = get(api, path, **{"from": "2026-03-04T05:00:00Z", "to": "2026-03-07T05:00:00Z"})
    assert exact.status_code == 200, exact.text
    assert exact.json()["totalRows"] > 0
    code, description = WORDINGS[wording]
    over = get(api, path, **{"from": "2026-03-04T05:00:00Z", "to": "2026-03-07T06:00:00Z"})
    assert_refused(over, code, description)
    assert_refused(get(api, path, **{"from": "2026-03-04", "to": "2026-03-12"}), code, description)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_span_is_wall_clock_in_tz(srv: SandboxServer, api: requests.Session, path: str) -> None:
    """Three New York days across the spring change (71 real hours) are three days."""
    srv.configure(range_cap=CAP)
    ny = {"tz": "America/New_York"}
    r = get(api, path, **ny, **{"from": "2026-03-06", "to": "2026-03-09"})
    assert r.status_code == 200, r.text
    r = get(api, path, **ny, **{"from": "2026-03-06", "to": "2026-03-09T01"})
    assert_refused(r, *WORDINGS["too_long"])


def test_other_errors_and_endpoints_untouched(srv: SandboxServer, api: requests.Session) -> None:
    srv.configure(range_cap=1)
    r = get(api, "/report", **{"from": "2026-03-04T05:43", "to": "2026-03-12"})
    assert r.status_code == 400 and "Invalid time format" in r.json()["error"]["description"]
    r = get(api, "/report", to="2026-03-12")
    assert r.json()["error"]["code"] == "PARAMETER_MISSING"
    r = get(api, "/event-log", **{"from": "2026-01-01", "to": "2026-03-12"})
    assert r.status_code == 200, r.text


def test_set_by_constructor_configure_and_admin(ds: Dataset) -> None:
    server = SandboxServer(ds, range_cap=31, range_cap_wording="apart")
    assert (server.range_cap, server.range_cap_wording) == (31, "apart")
    server.configure(range_cap=0)
    assert server.range_cap is None
    assert server.range_cap_wording == "apart", "the wording is a knob of its own"
    with server:
        url = server.url + "/__sandbox__/configure"
        r = requests.post(url, json={"range_cap": 2, "range_cap_wording": "period"}, timeout=10)
        assert r.status_code == 200, r.text
        assert (server.range_cap, server.range_cap_wording) == (2, "period")
        s = sandbox_api(server)
        r = s.get(server.url + "/report", params={"from": "2026-03-04", "to": "2026-03-07"})
        assert_refused(r, "BAD_REQUEST", "Maximum report period exceeded (2 days)")
        r = requests.post(url, json={"range_cap_wording": "nope"}, timeout=10)
        assert r.status_code == 400 and "nope" in r.json()["error"]["description"]
        r = requests.post(url, json={"range_cap": None}, timeout=10)
        assert r.status_code == 200 and server.range_cap is None


@pytest.mark.parametrize(
    "knobs",
    [
        {"range_cap": -1},
        {"range_cap": "thirty"},
        {"range_cap": 1.5},
        {"range_cap_wording": "bogus"},
        {"range_cap": 5, "range_cap_wording": "bogus"},
        {"range_cap": 5, "dialects": ["nope"]},
    ],
)
def test_bad_knobs_raise_and_change_nothing(ds: Dataset, knobs: dict) -> None:
    with pytest.raises(ValueError):
        SandboxServer(ds, **knobs)
    server = SandboxServer(ds)
    with pytest.raises(ValueError):
        server.configure(**knobs)
    assert server.range_cap is None
    assert server.range_cap_wording == DEFAULT_WORDING
    assert server.dialects == frozenset()


def test_cli_parses_range_cap(capsys: pytest.CaptureFixture) -> None:
    args = parse_args(["--range-cap", "31", "--range-cap-wording", "exceeded"])
    assert (args.range_cap, args.range_cap_wording) == (31, "exceeded")
    plain = parse_args([])
    assert (plain.range_cap, plain.range_cap_wording) == (None, DEFAULT_WORDING)
    for argv in (["--range-cap", "-2"], ["--range-cap-wording", "bogus"], ["--range-cap", "x"]):
        with pytest.raises(SystemExit) as exc:
            parse_args(argv)
        assert exc.value.code == 2
    assert "voluum-sandbox: error" in capsys.readouterr().err


def test_cli_serves_range_cap() -> None:
    argv = ["--port", "0", "--days", "3", "--campaigns", "2", "--start", "2026-03-01"]
    argv += ["--rate-limit", "0", "--range-cap", "1", "--range-cap-wording", "apart"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "voluum_sandbox", *argv],
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
        headers = {"cwauth-token": token}
        for path in ENDPOINTS:
            url = lines["url"] + path
            day = {"from": "2026-03-01", "to": "2026-03-02"}
            assert requests.get(url, params=day, headers=headers, timeout=30).status_code == 200
            over = {**day, "to": "2026-03-02T01"}
            r = requests.get(url, params=over, headers=headers, timeout=30)
            assert_refused(r, "INVALID_QUERY", "'from' and 'to' must not be more than 1 days apart")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
