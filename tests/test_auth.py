"""The access-key session: login, renewal before expiry, one re-login on 401, bad keys."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from tap_voluum.auth import VoluumSession
from tap_voluum.client import RateLimiter, VoluumHTTP
from tap_voluum.tap import TapVoluum
from tests.conftest import config_for
from tests.helpers import SyncResult, catalog_for, run_cli, run_tap, sync

if TYPE_CHECKING:
    from pathlib import Path

    from voluum_sandbox import SandboxServer

LOGIN = "/auth/access/session"


def logins(server: SandboxServer) -> list[dict]:
    return [r for r in server.requests if r["path"] == LOGIN]


def new_session(server: SandboxServer, clock=time.time) -> VoluumSession:
    http = VoluumHTTP(RateLimiter(50), pool_size=8)
    return VoluumSession(server.url, server.access_id, server.access_key, http, clock=clock)


def synced(config: dict, streams: set[str], server: SandboxServer) -> SyncResult:
    """Sync with a tap of its own, the sandbox's log cleared after discovery."""
    tap = TapVoluum(config=config, catalog=catalog_for(config, streams))
    server.clear_requests()
    return sync(tap)


def test_login_sets_the_token_header_on_every_request(fresh_sandbox: SandboxServer) -> None:
    result = synced(config_for(fresh_sandbox), {"campaigns", "offers", "landers"}, fresh_sandbox)
    assert len(result.records["campaigns"]) == len(fresh_sandbox.dataset.entities("campaign"))
    assert len(logins(fresh_sandbox)) == 1
    others = [r for r in fresh_sandbox.requests if r["path"] not in (LOGIN, "/column/info")]
    assert len(others) == 3
    assert all(r["token"] and r["status"] == 200 for r in others)


def test_token_is_renewed_a_margin_before_expiry(fresh_sandbox: SandboxServer) -> None:
    fresh_sandbox.configure(token_lifetime=100)
    now = [time.time()]
    session = new_session(fresh_sandbox, clock=lambda: now[0])
    first = session.token()
    now[0] += 85  # inside the lifetime, before the 10 % margin
    assert session.token() == first
    assert session.logins == 1
    now[0] += 6  # 91 s: within 10 s of expiry
    second = session.token()
    assert second != first
    assert session.logins == 2


def synced_after_expiry(config: dict, streams: set[str], server: SandboxServer) -> SyncResult:
    """Sync with a tap whose session token Voluum expired after the tap logged in."""
    tap = TapVoluum(config=config, catalog=catalog_for(config, streams))
    tap.log_in()
    server.expire_tokens()
    server.clear_requests()
    return sync(tap)


def test_a_401_causes_one_relogin_and_the_request_is_retried(fresh_sandbox: SandboxServer) -> None:
    result = synced_after_expiry(config_for(fresh_sandbox), {"campaigns", "offers"}, fresh_sandbox)
    assert len(result.records["offers"]) == len(fresh_sandbox.dataset.entities("offer"))
    statuses = [(r["path"], r["status"]) for r in fresh_sandbox.requests]
    # The first call after the expiry meets the 401, then one re-login and the retry.
    refused = [s for s in statuses if s[1] == 401]
    assert refused == [statuses[0]]
    assert statuses[1:3] == [(LOGIN, 200), (statuses[0][0], 200)], "re-login, then the retry"
    assert len(logins(fresh_sandbox)) == 1
    assert statuses[-1] == ("/offer", 200)


def test_concurrent_requests_meeting_an_expired_token_cause_one_login(
    fresh_sandbox: SandboxServer,
) -> None:
    config = config_for(fresh_sandbox, max_concurrency=8, report_window_days=1)
    result = synced_after_expiry(config, {"campaign_report"}, fresh_sandbox)
    assert result.records["campaign_report"]
    assert len(logins(fresh_sandbox)) == 1
    unauthorized = [r for r in fresh_sandbox.requests if r["status"] == 401]
    assert 1 <= len(unauthorized) <= 8
    tokens = {
        r["token"] for r in fresh_sandbox.requests if r["status"] == 200 and r["path"] != LOGIN
    }
    assert len(tokens) == 1


def test_threads_share_one_login(fresh_sandbox: SandboxServer) -> None:
    session = new_session(fresh_sandbox)
    tokens: list[str] = []
    barrier = threading.Barrier(12)

    def grab() -> None:
        barrier.wait()
        tokens.append(session.token())

    threads = [threading.Thread(target=grab) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(tokens)) == 1
    assert session.logins == 1
    session.invalidate("some-older-token")
    assert session.token() == tokens[0]
    session.invalidate(tokens[0])
    assert session.token() != tokens[0]
    assert session.logins == 2


def test_streams_of_a_tap_share_one_login_and_taps_share_nothing(
    fresh_sandbox: SandboxServer,
) -> None:
    config = config_for(fresh_sandbox)
    synced(config, {"campaigns", "offers", "flows", "traffic_sources"}, fresh_sandbox)
    assert len(logins(fresh_sandbox)) == 1, "one login for every stream of a tap"
    run_tap(config, {"landers", "affiliate_networks"})
    assert len(logins(fresh_sandbox)) == 3, "discovery's tap and the sync's tap log in apart"
    first, second = TapVoluum(config=config), TapVoluum(config={**config, "max_concurrency": 2})
    assert first.client is not second.client
    assert first.client.sessions is not second.client.sessions
    assert first.client.limiter is not second.client.limiter
    assert first.client.http is not second.client.http
    assert first.streams["offers"].requests_session is first.client.http
    assert second.streams["campaign_report"].authenticator is second.client.sessions


def test_wrong_credentials_end_in_one_line_without_secret(
    fresh_sandbox: SandboxServer, tmp_path: Path
) -> None:
    wrong_key = "wrong-secret-key-0123456789"
    config = config_for(fresh_sandbox, access_key=wrong_key)
    result = run_cli(config, tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "Voluum rejected the access key" in errors[0]
    assert "BAD_CREDENTIALS" in errors[0]
    assert "Traceback" not in result.stderr
    assert wrong_key not in result.stderr
    assert not result.records


def test_a_login_cut_short_is_retried(fresh_sandbox: SandboxServer) -> None:
    fresh_sandbox.fail_next("truncated", count=1, login=True, path=LOGIN)
    fresh_sandbox.fail_next("reset", count=1, login=True, path=LOGIN)
    result = run_tap(config_for(fresh_sandbox), {"campaigns"})
    assert len(result.records["campaigns"]) == len(fresh_sandbox.dataset.entities("campaign"))
    assert fresh_sandbox.fault_counts == {"truncated": 1, "reset": 1}
