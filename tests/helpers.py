"""Run tap-voluum in-process or as a CLI and read its Singer messages."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
from collections import defaultdict
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from tap_voluum.tap import TapVoluum

if TYPE_CHECKING:
    from voluum_sandbox import SandboxServer


@dataclass
class SyncResult:
    """The messages of one sync, sorted by kind."""

    messages: list[dict]
    stderr: str = ""
    returncode: int = 0
    records: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    schemas: dict[str, dict] = field(default_factory=dict)
    states: list[dict] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for message in self.messages:
            kind = message.get("type")
            if kind == "RECORD":
                self.records[message["stream"]].append(message["record"])
            elif kind == "SCHEMA":
                self.schemas[message["stream"]] = message
            elif kind == "STATE":
                self.states.append(message["value"])

    @property
    def final_state(self) -> dict:
        return self.states[-1] if self.states else {}

    def keyed(self, stream: str) -> dict[tuple, dict]:
        """Records of a stream by primary key (later copies win, as a target upserts)."""
        keys = self.schemas[stream]["key_properties"]
        return {tuple(r[k] for k in keys): r for r in self.records[stream]}


def parse_messages(text: str) -> list[dict]:
    """Parse Singer JSON lines, numbers kept exact."""
    return [
        json.loads(line, parse_float=Decimal) for line in text.splitlines() if line.startswith("{")
    ]


def catalog_for(config: dict, streams: set[str], deselect: tuple[str, ...] = ()) -> dict:
    """A discovered catalog with only `streams` selected, minus the `deselect` properties."""
    # As `--discover` does: the tap's catalog is dynamic, read with a valid config.
    tap = TapVoluum(config=config, validate_config=TapVoluum.dynamic_catalog, setup_mapper=False)
    catalog = tap.catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in streams
            elif item["breadcrumb"][-1] in deselect:
                item["metadata"]["selected"] = False
    return catalog


def run_tap(
    config: dict, streams: set[str], state: dict | None = None, deselect: tuple[str, ...] = ()
) -> SyncResult:
    """Sync the given streams in this process and collect the messages.

    The state is copied: the SDK keeps (and moves) the bookmarks of the state it is given.
    """
    state = copy.deepcopy(state)
    return sync(
        TapVoluum(config=config, state=state, catalog=catalog_for(config, streams, deselect))
    )


def sync(tap: TapVoluum) -> SyncResult:
    """Run a built tap's sync in this process and collect the messages."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        tap.sync_all()
    out.flush()
    out.seek(0)
    result = SyncResult(parse_messages(out.read()), err.getvalue())
    result.failures = dict(tap.run.failures)
    return result


def tap_command(
    config: dict, tmp: Path, streams: set[str] | None = None, state: dict | None = None
) -> list[str]:
    """The `tap-voluum` command line for a config (and catalog, state) written under `tmp`."""
    config_path = tmp / "config.json"
    config_path.write_text(json.dumps(config))
    command = [sys.executable, "-m", "tap_voluum", "--config", str(config_path)]
    if streams is not None:
        catalog_path = tmp / "catalog.json"
        catalog_path.write_text(json.dumps(catalog_for(config, streams)))
        command += ["--catalog", str(catalog_path)]
    if state is not None:
        state_path = tmp / "state.json"
        state_path.write_text(json.dumps(state))
        command += ["--state", str(state_path)]
    return command


def run_cli(
    config: dict,
    tmp: Path,
    *,
    streams: set[str] | None = None,
    state: dict | None = None,
    env: dict | None = None,
    args: tuple[str, ...] = (),
) -> SyncResult:
    """Run `tap-voluum` as a subprocess, as Meltano does."""
    command = [*tap_command(config, tmp, streams, state), *args]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
        check=False,
    )
    return SyncResult(parse_messages(proc.stdout), proc.stderr, proc.returncode)


def total(records: list[dict], field: str) -> Any:
    """Exact sum of one column."""
    return sum((Decimal(str(r.get(field) or 0)) for r in records), Decimal(0))


def sandbox_login(srv: SandboxServer) -> str:
    """A session token from the sandbox's access-key login."""
    r = requests.post(
        srv.url + "/auth/access/session",
        json={"accessId": srv.access_id, "accessKey": srv.access_key},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()["token"]


def sandbox_api(srv: SandboxServer) -> requests.Session:
    """A requests session logged in to the sandbox (`.base` is its URL)."""
    s = requests.Session()
    s.headers["cwauth-token"] = sandbox_login(srv)
    s.base = srv.url  # type: ignore[attr-defined]
    return s


def bookmarks_of(state: dict, account: str = "default") -> dict[str, dict]:
    """Each stream's bookmark for one account (streams keep one per account, as partitions)."""
    found: dict[str, dict] = {}
    for stream, stream_state in (state.get("bookmarks") or {}).items():
        for partition in stream_state.get("partitions") or []:
            if partition.get("context") == {"account": account}:
                found[stream] = partition
        if "partitions" not in stream_state:
            found[stream] = stream_state
    return found
