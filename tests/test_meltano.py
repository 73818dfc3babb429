"""End to end through Meltano: `meltano run tap-voluum target-duckdb|target-postgres`.

The repository's own meltano.yml is used as it is, with the sandbox's address and credentials,
the dates, the stream selection and the targets' databases given as environment variables
(Meltano reads every setting as <PLUGIN>_<SETTING>, the selection as TAP_VOLUUM__SELECT).
Meltano's system database (run state) lives in a temporary directory, so every test session
starts with no state; the plugin environments stay cached in .meltano/ between sessions.

Truth: the distinct primary keys the tap emits for each stream (`meltano invoke tap-voluum`,
same settings and selection).  Each table must hold exactly that many rows after the first
run and still after the second, incremental run, with no key twice.

Needs the pinned Meltano (scripts/meltano-requirements.txt; ./scripts/test.sh installs it into
.meltano-venv/, and so does this module if it is missing) and PostgreSQL's initdb/pg_ctl
(.ci/run installs them).  Skipped only when the package registry cannot be reached.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import bookmarks_of
from voluum_sandbox import Dataset, SandboxServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
MELTANO_VENV = ROOT / ".meltano-venv"
MELTANO = MELTANO_VENV / "bin" / "meltano"
REQUIREMENTS = ROOT / "scripts" / "meltano-requirements.txt"
PLUGIN_PYTHON = {
    target: ROOT / ".meltano" / "loaders" / target / "venv" / "bin" / "python"
    for target in ("target-duckdb", "target-postgres")
}
SCHEMA = "tap_voluum"
STREAMS = (
    "campaigns",
    "offers",
    "landers",
    "flows",
    "traffic_sources",
    "affiliate_networks",
    "workspaces",
    "campaign_report",
    "conversions",
)
INCREMENTAL = ("campaign_report", "conversions")
TARGETS = ("target-duckdb", "target-postgres")
INSTALL_TIMEOUT = 900
RUN_TIMEOUT = 600
NETWORK_TROUBLE = re.compile(
    r"Failed to establish a new connection|Temporary failure in name resolution|"
    r"Name or service not known|Network is unreachable|Max retries exceeded|"
    r"Could not fetch URL|No matching distribution found|dns error|error sending request|"
    r"Connection refused|ConnectError",
    re.IGNORECASE,
)

ERROR_LINE = re.compile(r"\[error|\[critical|Error\b|Exception\b|failed", re.IGNORECASE)
LOG_DIR = ROOT / ".meltano" / "e2e-logs"

TIMINGS: dict[str, float] = {}

# Run with a plugin's own Python: counts rows, duplicated keys and declared primary keys.
INSPECT = r"""
import json, sys
engine, target, schema, spec = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])

def q(name):
    return '"' + name.replace('"', '""') + '"'

if engine == "duckdb":
    import duckdb
    con = duckdb.connect(target, read_only=True)
    def rows(sql, params=()):
        return con.execute(sql.replace("%s", "?"), list(params)).fetchall()
else:
    import psycopg
    con = psycopg.connect(target, autocommit=True)
    def rows(sql, params=()):
        with con.cursor() as cur:
            cur.execute(sql, list(params))
            return cur.fetchall()

tables = {r[0] for r in rows(
    "select table_name from information_schema.tables where table_schema = %s", [schema])}
out = {"tables": sorted(tables), "streams": {}}
for stream, keys in spec.items():
    if stream not in tables:
        continue
    columns = {r[0].lower(): r[0] for r in rows(
        "select column_name from information_schema.columns"
        " where table_schema = %s and table_name = %s", [schema, stream])}
    table = q(schema) + "." + q(stream)
    key_cols = ", ".join(q(columns[k.lower()]) for k in keys)
    info = {
        "rows": rows("select count(*) from " + table)[0][0],
        "duplicated_keys": rows(
            "select count(*) from (select " + key_cols + " from " + table
            + " group by " + key_cols + " having count(*) > 1) d")[0][0],
    }
    batched = columns.get("_sdc_batched_at")
    if batched:
        info["rows_per_batch"] = sorted(
            [str(at), n] for at, n in rows(
                "select " + q(batched) + ", count(*) from " + table + " group by 1"))
    if engine == "duckdb":
        found = rows(
            "select constraint_column_names from duckdb_constraints()"
            " where schema_name = %s and table_name = %s and constraint_type = 'PRIMARY KEY'",
            [schema, stream])
        info["primary_key"] = list(found[0][0]) if found else []
    else:
        info["primary_key"] = [r[0] for r in rows(
            "select a.attname from pg_index i join pg_attribute a"
            " on a.attrelid = i.indrelid and a.attnum = any(i.indkey)"
            " where i.indrelid = %s::regclass and i.indisprimary", [table])]
    out["streams"][stream] = info
print(json.dumps(out))
"""


# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(command: list[str], *, timeout: float, **kwargs: Any) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-4000:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        pytest.fail(f"{' '.join(command[:4])} ... did not finish in {timeout} s:\n{tail}")


def _tail(text: str, chars: int = 6000) -> str:
    return text[-chars:]


def _essence(log: str) -> str:
    """The error lines of a Meltano log, and its last lines."""
    lines = log.splitlines()
    errors = [line for line in lines if ERROR_LINE.search(line)]
    picked = list(dict.fromkeys([*errors[-12:], *lines[-4:]]))
    return "\n".join(line[:300] for line in picked)


def _skip_if_unreachable(what: str, output: str) -> None:
    if NETWORK_TROUBLE.search(output):
        pytest.skip(f"{what}: the package registry cannot be reached ({_tail(output, 400)})")


def _pinned_meltano() -> str:
    for line in REQUIREMENTS.read_text().splitlines():
        if line.startswith("meltano=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{REQUIREMENTS} pins no meltano version")


# --------------------------------------------------------------------------- fixtures


class _TimingsReport:
    """Prints the Meltano steps' durations in pytest's terminal summary."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not TIMINGS:
            return
        terminalreporter.write_sep("-", "meltano end-to-end timings (seconds)")
        for step, seconds in TIMINGS.items():
            terminalreporter.write_line(f"  {step:<48} {seconds:7.1f}")


@pytest.fixture(scope="module")
def timings(request: pytest.FixtureRequest) -> dict[str, float]:
    """Seconds per Meltano step, shown in the terminal summary."""
    plugins = request.config.pluginmanager
    if not plugins.has_plugin("tap-voluum-e2e-timings"):
        plugins.register(_TimingsReport(), "tap-voluum-e2e-timings")
    return TIMINGS


@pytest.fixture(scope="module")
def meltano(timings: dict[str, float]) -> Path:
    """The pinned Meltano in .meltano-venv/, installed when missing."""
    wanted = _pinned_meltano()
    if MELTANO.exists():
        version = _run([str(MELTANO), "--version"], timeout=120)
        if f"version {wanted}" in version.stdout:
            return MELTANO
    started = time.monotonic()
    if not (MELTANO_VENV / "bin" / "python").exists():
        _run([sys.executable, "-m", "venv", str(MELTANO_VENV)], timeout=300)
    pip = _run(
        [
            str(MELTANO_VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "-r",
            str(REQUIREMENTS),
        ],
        timeout=INSTALL_TIMEOUT,
    )
    if pip.returncode != 0:
        _skip_if_unreachable("pip install meltano", pip.stdout + pip.stderr)
        pytest.fail(f"pip install meltano failed:\n{_tail(pip.stdout + pip.stderr)}")
    timings["pip install meltano"] = time.monotonic() - started
    return MELTANO


@pytest.fixture(scope="module")
def sandbox() -> SandboxServer:
    """A small sandbox: 4 campaigns, the 5 UTC days before today."""
    today = datetime.now(timezone.utc).date()
    dataset = Dataset(seed=5, start=today - timedelta(days=5), days=5, campaigns=4)
    server = SandboxServer(dataset=dataset, port=0).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres() -> dict[str, Any]:
    """A throwaway PostgreSQL cluster on loopback (as user `postgres` when run as root)."""
    installed_initdb = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    initdb = shutil.which("initdb") or (str(installed_initdb[-1]) if installed_initdb else None)
    if initdb is None:
        pytest.fail("PostgreSQL's initdb is not installed (.ci/run installs it with apt-get)")
    bindir = Path(initdb).parent
    pg_ctl = shutil.which("pg_ctl") or str(bindir / "pg_ctl")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="tap-voluum-pg-"))
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres", "postgres")
    data = base / "data"
    init = _run(
        [*as_user, str(initdb), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        timeout=300,
    )
    assert init.returncode == 0, f"initdb failed:\n{init.stdout}{init.stderr}"
    port = _free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={base} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    start = _run(
        [
            *as_user,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(base / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        ],
        timeout=120,
    )
    log = base / "server.log"
    assert start.returncode == 0, (
        f"pg_ctl start failed:\n{start.stdout}{start.stderr}\n"
        f"{log.read_text() if log.exists() else ''}"
    )
    try:
        yield {
            "host": "127.0.0.1",
            "port": port,
            "user": "postgres",
            "database": "postgres",
            "dsn": f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
        }
    finally:
        _run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], timeout=120)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="tap-voluum-e2e-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def meltano_env(sandbox: SandboxServer, postgres: dict[str, Any], workdir: Path) -> dict[str, str]:
    """Environment of every Meltano command: sandbox, dates, selection, databases."""
    today = datetime.now(timezone.utc).date()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_VOLUUM", "TARGET_DUCKDB", "TARGET_POSTGRES", "MELTANO_"))
    }
    env.update(
        {
            "NO_COLOR": "1",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_ENVIRONMENT": "sandbox",
            "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",
            "TAP_VOLUUM_API_URL": sandbox.url,
            "TAP_VOLUUM_ACCESS_ID": sandbox.access_id,
            "TAP_VOLUUM_ACCESS_KEY": sandbox.access_key,
            "TAP_VOLUUM_START_DATE": f"{today - timedelta(days=4)}T00:00:00Z",
            "TAP_VOLUUM_END_DATE": f"{today}T00:00:00Z",
            # One day back from the bookmark: the second run re-reads part of the data only.
            "TAP_VOLUUM_LOOKBACK_DAYS": "1",
            "TAP_VOLUUM__SELECT": json.dumps([f"{s}.*" for s in STREAMS]),
            "TARGET_DUCKDB_FILEPATH": str(workdir / "e2e.duckdb"),
            "TARGET_POSTGRES_HOST": postgres["host"],
            "TARGET_POSTGRES_PORT": str(postgres["port"]),
            "TARGET_POSTGRES_USER": postgres["user"],
            "TARGET_POSTGRES_PASSWORD": "unused-trust-auth",
            "TARGET_POSTGRES_DATABASE": postgres["database"],
        }
    )
    return env


@pytest.fixture(scope="module")
def installed(meltano: Path, meltano_env: dict[str, str], timings: dict[str, float]) -> Path:
    """`meltano install`: plugin environments in .meltano/ (kept between sessions)."""
    started = time.monotonic()
    result = _run([str(meltano), "install"], timeout=INSTALL_TIMEOUT, cwd=ROOT, env=meltano_env)
    timings["meltano install"] = time.monotonic() - started
    if result.returncode != 0:
        _skip_if_unreachable("meltano install", result.stdout + result.stderr)
        pytest.fail(f"meltano install failed:\n{_tail(result.stdout + result.stderr)}")
    return meltano


@pytest.fixture(scope="module")
def truth(
    installed: Path, meltano_env: dict[str, str], timings: dict[str, float]
) -> dict[str, Any]:
    """What the tap emits with the same settings: key properties and distinct keys per stream."""
    started = time.monotonic()
    result = _run(
        [str(installed), "invoke", "tap-voluum"], timeout=RUN_TIMEOUT, cwd=ROOT, env=meltano_env
    )
    timings["meltano invoke tap-voluum (truth)"] = time.monotonic() - started
    if result.returncode != 0:
        pytest.fail(f"meltano invoke tap-voluum failed:\n{_tail(result.stderr)}", pytrace=False)
    keys: dict[str, list[str]] = {}
    distinct: dict[str, set[tuple]] = defaultdict(set)
    records: dict[str, int] = defaultdict(int)
    for line in result.stdout.splitlines():
        if not line.startswith("{"):
            continue
        message = json.loads(line)
        if message.get("type") == "SCHEMA":
            keys[message["stream"]] = list(message.get("key_properties") or [])
        elif message.get("type") == "RECORD":
            stream = message["stream"]
            records[stream] += 1
            distinct[stream].add(tuple(message["record"].get(k) for k in keys[stream]))
    return {
        "keys": keys,
        "distinct": {s: len(v) for s, v in distinct.items()},
        "records": dict(records),
    }


def _inspect(
    target: str,
    meltano_env: dict[str, str],
    postgres: dict[str, Any],
    keys: dict,
    schema: str = SCHEMA,
) -> dict:
    engine = "duckdb" if target == "target-duckdb" else "postgres"
    where = meltano_env["TARGET_DUCKDB_FILEPATH"] if engine == "duckdb" else postgres["dsn"]
    spec = {s: keys[s] for s in STREAMS if s in keys}
    result = _run(
        [str(PLUGIN_PYTHON[target]), "-c", INSPECT, engine, where, schema, json.dumps(spec)],
        timeout=300,
    )
    if result.returncode != 0:
        raise RunFailed(f"reading the {engine} tables failed:\n{_tail(result.stderr)}")
    return json.loads(result.stdout)


def _run_twice(
    target: str,
    *,
    meltano: Path,
    env: dict[str, str],
    postgres: dict,
    keys: dict,
    timings: dict[str, float],
) -> list[dict[str, Any]]:
    """`meltano run tap-voluum TARGET` twice; the tables and the state after each run."""
    seen = []
    for attempt in (1, 2):
        started = time.monotonic()
        result = _run(
            [str(meltano), "run", "tap-voluum", target], timeout=RUN_TIMEOUT, cwd=ROOT, env=env
        )
        timings[f"meltano run tap-voluum {target} #{attempt}"] = time.monotonic() - started
        if result.returncode != 0:
            log = LOG_DIR / f"{target}-run{attempt}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(result.stdout + result.stderr, encoding="utf-8")
            raise RunFailed(
                f"meltano run tap-voluum {target} (run {attempt}) exited {result.returncode}"
                f" (full log: {log.relative_to(ROOT)}):\n{_essence(result.stdout + result.stderr)}"
            )
        state = _run(
            [str(meltano), "state", "get", f"sandbox:tap-voluum-to-{target}"],
            timeout=120,
            cwd=ROOT,
            env=env,
        )
        seen.append(
            {
                "tables": _inspect(target, env, postgres, keys),
                "state": json.loads(state.stdout) if state.returncode == 0 else None,
            }
        )
    return seen


class RunFailed(Exception):
    """A `meltano run` that did not succeed."""


@pytest.fixture(scope="module")
def runs(
    installed: Path,
    truth: dict[str, Any],
    meltano_env: dict[str, str],
    postgres: dict[str, Any],
    timings: dict[str, float],
) -> dict[str, list[dict[str, Any]] | str]:
    """Per target: the two runs' tables and states, or why the runs failed."""
    seen: dict[str, list[dict[str, Any]] | str] = {}
    for target in TARGETS:
        try:
            seen[target] = _run_twice(
                target,
                meltano=installed,
                env=meltano_env,
                postgres=postgres,
                keys=truth["keys"],
                timings=timings,
            )
        except RunFailed as exc:
            seen[target] = str(exc)
    return seen


def _runs_of(runs: dict, target: str) -> list[dict[str, Any]]:
    found = runs[target]
    if isinstance(found, str):
        pytest.fail(found, pytrace=False)
    return found


# --------------------------------------------------------------------------- tests


def test_the_tap_emits_every_selected_stream(truth: dict[str, Any]) -> None:
    assert sorted(truth["keys"]) == sorted(STREAMS), "streams announced by the tap"
    for stream in STREAMS:
        assert truth["keys"][stream], f"{stream} declares no primary key"
        assert truth["distinct"].get(stream, 0) > 0, f"the tap emitted no {stream} record"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("attempt", [1, 2], ids=["first-run", "second-run"])
def test_tables_hold_one_row_per_key(
    runs: dict, truth: dict[str, Any], target: str, attempt: int
) -> None:
    tables = _runs_of(runs, target)[attempt - 1]["tables"]
    missing = [s for s in STREAMS if s not in tables["streams"]]
    assert not missing, f"{target}: no table for {missing} (tables: {tables['tables']})"
    problems = []
    for stream in STREAMS:
        info = tables["streams"][stream]
        want = truth["distinct"][stream]
        if info["rows"] != want:
            problems.append(f"{stream}: {info['rows']} rows, the tap emitted {want} distinct keys")
        if info["duplicated_keys"]:
            problems.append(f"{stream}: {info['duplicated_keys']} primary keys more than once")
    assert not problems, f"{target} after run {attempt}:\n" + "\n".join(problems)


@pytest.mark.parametrize("target", TARGETS)
def test_tables_declare_the_streams_primary_key(
    runs: dict, truth: dict[str, Any], target: str
) -> None:
    """The loader keys each table on the stream's key: what it upserts on."""
    tables = _runs_of(runs, target)[1]["tables"]["streams"]
    for stream in STREAMS:
        declared = sorted(c.lower() for c in tables[stream]["primary_key"])
        assert declared == sorted(k.lower() for k in truth["keys"][stream]), (
            f"{target}.{stream}: table key {declared}, stream key {truth['keys'][stream]}"
        )


@pytest.mark.parametrize("target", TARGETS)
def test_second_run_is_incremental(runs: dict, target: str) -> None:
    """The first run leaves bookmarks; the second starts from them (minus the lookback)."""
    first, second = _runs_of(runs, target)
    assert first["state"] is not None, f"no state saved by the first {target} run"
    bookmarks = bookmarks_of(first["state"]["singer_state"])  # the account `default`'s
    for stream in INCREMENTAL:
        assert bookmarks.get(stream, {}).get("replication_key_value"), (
            f"{target}: no bookmark for {stream}: {bookmarks.get(stream)}"
        )
    assert second["state"] is not None


def test_target_postgres_upserts_on_the_key(runs: dict) -> None:
    """Rows read again by the second run are updated in place, the others left alone."""
    first_run, second_run = _runs_of(runs, "target-postgres")
    first = first_run["tables"]["streams"]
    second = second_run["tables"]["streams"]
    for stream in INCREMENTAL:
        before = {at for at, _ in first[stream]["rows_per_batch"]}
        batches = second[stream]["rows_per_batch"]
        updated = sum(n for at, n in batches if at not in before)
        untouched = sum(n for at, n in batches if at in before)
        assert updated > 0, f"{stream}: the second run updated no row ({batches})"
        assert second[stream]["rows"] == first[stream]["rows"]
        if stream == "campaign_report":
            # Four days read first; the second run goes one day back from the last bookmark.
            assert untouched > 0, f"{stream}: the second run rewrote every row ({batches})"
    for stream in set(STREAMS) - set(INCREMENTAL):
        before = {at for at, _ in first[stream]["rows_per_batch"]}
        assert all(at not in before for at, _ in second[stream]["rows_per_batch"]), (
            f"{stream} (full table) was not rewritten by the second run"
        )


def test_batch_messages_load_the_same_rows_into_postgres(
    installed: Path,
    truth: dict[str, Any],
    meltano_env: dict[str, str],
    postgres: dict[str, Any],
    workdir: Path,
) -> None:
    """With `batch_config` the tap writes BATCH messages (gzipped JSONL files; windowed
    streams with a STATE after each file, not each window) and target-postgres loads them:
    one row per key the RECORD messages of the same sync carry, in a schema of their own."""
    batches = workdir / "batches"
    schema = "tap_voluum_batch"
    env = {
        **meltano_env,
        "TAP_VOLUUM_BATCH_CONFIG_ENCODING_FORMAT": "jsonl",
        "TAP_VOLUUM_BATCH_CONFIG_ENCODING_COMPRESSION": "gzip",
        "TAP_VOLUUM_BATCH_CONFIG_STORAGE_ROOT": batches.as_uri(),
        "TAP_VOLUUM_BATCH_CONFIG_STORAGE_PREFIX": "batch-",
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
    }
    command = [str(installed), "run", "--state-id-suffix", "batch", "tap-voluum", "target-postgres"]
    started = time.monotonic()
    result = _run(command, timeout=RUN_TIMEOUT, cwd=ROOT, env=env)
    TIMINGS["meltano run tap-voluum target-postgres (BATCH)"] = time.monotonic() - started
    assert result.returncode == 0, _essence(result.stdout + result.stderr)
    lines = 0
    for path in batches.glob("batch-*"):
        with gzip.open(path, "rt", encoding="utf-8") as batch:
            lines += sum(1 for _ in batch)
    assert lines == sum(truth["records"].values()), "every record went into a batch file"
    tables = _inspect("target-postgres", env, postgres, truth["keys"], schema)["streams"]
    problems = [
        f"{stream}: {tables.get(stream, {}).get('rows')} rows, {truth['distinct'][stream]} keys"
        for stream in STREAMS
        if tables.get(stream, {}).get("rows") != truth["distinct"][stream]
        or tables[stream]["duplicated_keys"]
    ]
    assert not problems, "BATCH load:\n" + "\n".join(problems)
