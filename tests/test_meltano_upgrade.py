"""Upgrading from the single-account tap: what target-duckdb and target-postgres do with `account`.

The tap used to emit no `account` and key every stream without it (campaign_report:
["bucketStart", "campaignId"]); now every record carries `account` and every key starts with it.
This module loads the "old" output into each pinned loader, then the new output into the same
tables, and checks what README's "Upgrading from a single-account tap" says happens:

- the new load adds the `account` column (null in the rows already there) but keeps the table's
  primary key on the old columns, then fails with a duplicate-key error on that old key: the
  loader looks for the new key (`account` = 'default'), finds no row (old rows have null), and
  inserts a second row with the same old key;
- `UPDATE ... SET account = 'default' WHERE account IS NULL` lets the same load upsert in place
  (one row per key, no duplicates); the old primary key stays;
- until the key is moved, a second account's rows with the same old key are refused;
- target-postgres: the key can then be moved with `ALTER TABLE ... DROP CONSTRAINT ..., ADD
  PRIMARY KEY (account, ...)` (and the second account loads); DuckDB 1.1.3 cannot change a
  primary key in place;
- tables dropped and loaded again are created with the new key.

The old output is the tap's own output with `account` removed from every SCHEMA (properties,
key_properties) and RECORD, loaded with `meltano invoke TARGET < file` (the targets read Singer
messages on stdin; meltano.yml's loader settings apply as in `meltano run`).  A small sandbox and
two streams (campaigns, campaign_report) keep it short.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.test_meltano import (  # fixtures are used by name
    LOG_DIR,
    PLUGIN_PYTHON,
    ROOT,
    RUN_TIMEOUT,
    _essence,
    _run,
    _tail,
    installed,  # noqa: F401
    meltano,  # noqa: F401
    postgres,  # noqa: F401
    workdir,  # noqa: F401
)
from voluum_sandbox import Dataset, SandboxServer

pytestmark = pytest.mark.slow

SCHEMA = "tap_voluum"
STREAMS = ("campaigns", "campaign_report")
TARGETS = ("target-duckdb", "target-postgres")
DUPLICATE_KEY = {
    # duckdb.duckdb.ConstraintException: Constraint Error: Duplicate key "bucketstart: ...,
    # campaignid: ..." violates primary key constraint.
    "target-duckdb": "violates primary key constraint",
    # psycopg.errors.UniqueViolation: duplicate key value violates unique constraint
    # "campaigns_pkey" DETAIL: Key (id)=(...) already exists.
    "target-postgres": "duplicate key value violates unique constraint",
}

# Run with a plugin's own Python: executes the statements in order, prints each one's rows
# (or its error) as JSON.
SQL = r"""
import json, sys
engine, target, statements = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if engine == "duckdb":
    import duckdb
    con = duckdb.connect(target)
    def run(sql):
        cur = con.execute(sql)
        return cur.fetchall() if cur.description else []
else:
    import psycopg
    con = psycopg.connect(target, autocommit=True)
    def run(sql):
        with con.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
out = []
for sql in statements:
    try:
        out.append({"rows": [list(r) for r in run(sql)]})
    except Exception as exc:
        out.append({"error": f"{type(exc).__name__}: {exc}"})
print(json.dumps(out, default=str))
"""


TIMINGS: dict[str, float] = {}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------- fixtures


class _TimingsReport:
    """Prints this module's Meltano steps' durations in pytest's terminal summary (its own
    report: pytest may import tests/test_meltano.py twice, under two names)."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if TIMINGS:
            terminalreporter.write_sep("-", "meltano upgrade timings (seconds)")
            for step, seconds in TIMINGS.items():
                terminalreporter.write_line(f"  {step:<52} {seconds:7.1f}")


@pytest.fixture(scope="module")
def timings(request: pytest.FixtureRequest) -> dict[str, float]:
    """Seconds per Meltano step (`meltano install` included), shown in the terminal summary."""
    plugins = request.config.pluginmanager
    if not plugins.has_plugin("tap-voluum-upgrade-timings"):
        plugins.register(_TimingsReport(), "tap-voluum-upgrade-timings")
    return TIMINGS


@pytest.fixture(scope="module")
def sandbox() -> SandboxServer:
    """A small sandbox: 3 campaigns, the 3 UTC days before today."""
    today = datetime.now(timezone.utc).date()
    dataset = Dataset(seed=5, start=today - timedelta(days=3), days=3, campaigns=3)
    server = SandboxServer(dataset=dataset, port=0).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def meltano_env(sandbox: SandboxServer, postgres: dict[str, Any], workdir: Path) -> dict[str, str]:  # noqa: F811
    """Environment of every Meltano command: sandbox, dates, two streams, databases."""
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
            "TAP_VOLUUM_START_DATE": f"{today - timedelta(days=2)}T00:00:00Z",
            "TAP_VOLUUM_END_DATE": f"{today}T00:00:00Z",
            "TAP_VOLUUM__SELECT": json.dumps([f"{s}.*" for s in STREAMS]),
            "TARGET_DUCKDB_FILEPATH": str(workdir / "upgrade.duckdb"),
            "TARGET_POSTGRES_HOST": postgres["host"],
            "TARGET_POSTGRES_PORT": str(postgres["port"]),
            "TARGET_POSTGRES_USER": postgres["user"],
            "TARGET_POSTGRES_PASSWORD": "unused-trust-auth",
            "TARGET_POSTGRES_DATABASE": postgres["database"],
        }
    )
    return env


def _old(line: str) -> str:
    """One Singer message as the single-account tap wrote it: no `account` anywhere."""
    message = json.loads(line)
    if message.get("type") == "SCHEMA":
        message["schema"]["properties"].pop("account", None)
        if "required" in message["schema"]:
            message["schema"]["required"] = [
                k for k in message["schema"]["required"] if k != "account"
            ]
        message["key_properties"] = [k for k in message["key_properties"] if k != "account"]
    elif message.get("type") == "RECORD":
        message["record"].pop("account", None)
    return json.dumps(message)


def _north(line: str) -> str:
    """One message as if a second account, `north`, held the same campaigns."""
    message = json.loads(line)
    if message.get("type") == "RECORD":
        message["record"]["account"] = "north"
    return json.dumps(message)


@pytest.fixture(scope="module")
def outputs(
    installed: Path,  # noqa: F811
    meltano_env: dict[str, str],
    workdir: Path,  # noqa: F811
) -> dict[str, Any]:
    """The tap's output (new.jsonl), its single-account copy (old.jsonl), keys and counts."""
    started = time.monotonic()
    result = _run(
        [str(installed), "invoke", "tap-voluum"], timeout=RUN_TIMEOUT, cwd=ROOT, env=meltano_env
    )
    TIMINGS["meltano invoke tap-voluum"] = time.monotonic() - started
    assert result.returncode == 0, _tail(result.stderr)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    (workdir / "new.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (workdir / "old.jsonl").write_text("\n".join(map(_old, lines)) + "\n", encoding="utf-8")
    (workdir / "north.jsonl").write_text("\n".join(map(_north, lines)) + "\n", encoding="utf-8")
    keys: dict[str, list[str]] = {}
    distinct: dict[str, set] = {s: set() for s in STREAMS}
    for line in lines:
        message = json.loads(line)
        if message["type"] == "SCHEMA":
            keys[message["stream"]] = message["key_properties"]
        elif message["type"] == "RECORD":
            record = message["record"]
            distinct[message["stream"]].add(tuple(record[k] for k in keys[message["stream"]]))
            assert record["account"] == "default"
    for stream in STREAMS:
        assert keys[stream][0] == "account", f"{stream}: key {keys[stream]}"
    return {
        "new": workdir / "new.jsonl",
        "old": workdir / "old.jsonl",
        "north": workdir / "north.jsonl",
        "keys": keys,
        "old_keys": {s: k[1:] for s, k in keys.items()},
        "rows": {s: len(v) for s, v in distinct.items()},
    }


# --------------------------------------------------------------------------- steps


class Database:
    """One target's database: loads through Meltano, SQL through the plugin's own Python."""

    def __init__(
        self, target: str, meltano_bin: Path, env: dict[str, str], cluster: dict[str, Any]
    ) -> None:
        self.target = target
        self.meltano = meltano_bin
        self.env = env
        self.engine = "duckdb" if target == "target-duckdb" else "postgres"
        self.where = env["TARGET_DUCKDB_FILEPATH"] if self.engine == "duckdb" else cluster["dsn"]

    def load(self, path: Path, step: str) -> tuple[int, str]:
        """`meltano invoke TARGET < path`: exit code and log."""
        started = time.monotonic()
        with path.open(encoding="utf-8") as stdin:
            result = _run(
                [str(self.meltano), "invoke", self.target],
                timeout=RUN_TIMEOUT,
                cwd=ROOT,
                env=self.env,
                stdin=stdin,
            )
        TIMINGS[f"{self.target} < {step}"] = time.monotonic() - started
        log = result.stdout + result.stderr
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        (LOG_DIR / f"upgrade-{self.target}-{step}.log").write_text(log, encoding="utf-8")
        return result.returncode, log

    def sql(self, *statements: str) -> list[dict[str, Any]]:
        result = _run(
            [
                str(PLUGIN_PYTHON[self.target]),
                "-c",
                SQL,
                self.engine,
                self.where,
                json.dumps(statements),
            ],
            timeout=300,
        )
        assert result.returncode == 0, f"SQL on {self.engine} failed:\n{_tail(result.stderr)}"
        return json.loads(result.stdout)

    def columns(self) -> dict[str, dict[str, str]]:
        """Per table: lower-cased column name -> its spelling (DuckDB lower-cases, PG does not)."""
        found = self.sql(
            "select table_name, column_name from information_schema.columns"
            f" where table_schema = '{SCHEMA}'"
        )[0]["rows"]
        columns: dict[str, dict[str, str]] = {}
        for table, name in found:
            columns.setdefault(table, {})[name.lower()] = name
        return columns

    def _key_sql(self, stream: str) -> tuple[str, str]:
        """Queries of the primary key's columns and of every unique index or constraint."""
        if self.engine == "duckdb":
            where = (
                "from duckdb_constraints()"
                f" where schema_name = '{SCHEMA}' and table_name = '{stream}' and constraint_type"
            )
            return (
                f"select unnest(constraint_column_names) {where} = 'PRIMARY KEY'",
                f"select constraint_type || ' ' || constraint_text {where}"
                " in ('PRIMARY KEY', 'UNIQUE')",
            )
        return (
            "select a.attname from pg_index i join pg_attribute a"
            " on a.attrelid = i.indrelid and a.attnum = any(i.indkey)"
            f" where i.indrelid = '{SCHEMA}.{stream}'::regclass and i.indisprimary"
            " order by array_position(i.indkey, a.attnum)",
            "select pg_get_indexdef(indexrelid) from pg_index"
            f" where indrelid = '{SCHEMA}.{stream}'::regclass and indisunique",
        )

    def tables(self, keys: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
        """Per stream: rows, `account` values, duplicated old and new keys, key, unique indexes,
        the distinct _sdc_batched_at (what a load rewrote)."""
        all_columns = self.columns()
        statements: list[str] = []
        for stream in STREAMS:
            columns = all_columns[stream]
            table = f"{_q(SCHEMA)}.{_q(stream)}"
            old_key = ", ".join(_q(columns[k.lower()]) for k in keys[stream] if k != "account")
            new_key = ", ".join(_q(columns.get(k.lower(), k)) for k in keys[stream])
            account = "account" if "account" in columns else "'(no column)'"
            statements += [
                f"select count(*) from {table}",
                f"select count(*) from (select {old_key} from {table}"
                f" group by {old_key} having count(*) > 1) d",
                f"select count(*) from (select {new_key} from {table}"
                f" group by {new_key} having count(*) > 1) d"
                if "account" in columns
                else "select null",
                f"select {account}, count(*) from {table} group by 1",
                f"select distinct _sdc_batched_at from {table}",
                *self._key_sql(stream),
            ]
        results = iter(self.sql(*statements))
        seen = {}
        for stream in STREAMS:
            rows, old_dup, new_dup, accounts, batched, key, unique = (
                next(results)["rows"] for _ in range(7)
            )
            seen[stream] = {
                "has_account": "account" in all_columns[stream],
                "rows": rows[0][0],
                "duplicated_old_keys": old_dup[0][0],
                "duplicated_new_keys": new_dup[0][0],
                "accounts": {str(account): n for account, n in accounts},
                "batched_at": sorted(str(r[0]) for r in batched),
                "primary_key": [r[0].lower() for r in key],
                "unique": [r[0] for r in unique],
            }
        return seen


def _upgrade(target: str, meltano_bin: Path, env: dict, cluster: dict, outputs: dict) -> dict:
    """Every step of the upgrade on one target; what each left behind."""
    db = Database(target, meltano_bin, env, cluster)
    keys = outputs["keys"]
    seen: dict[str, Any] = {}
    db.sql(f"drop schema if exists {SCHEMA} cascade")

    # 1. the single-account tap's output
    seen["old_load"] = db.load(outputs["old"], "old")
    seen["old"] = db.tables(keys)

    # 2. the multi-account tap's output into the same tables
    seen["new_load"] = db.load(outputs["new"], "new")
    seen["after_new"] = db.tables(keys)

    # 3. the old rows are given the account they belong to; the same load again
    seen["update"] = db.sql(
        *(f"update {SCHEMA}.{_q(s)} set account = 'default' where account is null" for s in STREAMS)
    )
    seen["updated_load"] = db.load(outputs["new"], "new-after-update")
    seen["after_update"] = db.tables(keys)
    # a second account whose rows repeat the old key
    seen["north_load"] = db.load(outputs["north"], "north-on-old-key")
    seen["after_north"] = db.tables(keys)

    # 4. the table's primary key moved to the new key, in place
    moves = []
    all_columns = db.columns()
    for stream in STREAMS:
        columns = all_columns[stream]
        new_key = ", ".join(_q(columns[k.lower()]) for k in keys[stream])
        if db.engine == "duckdb":
            moves.append(f"alter table {SCHEMA}.{_q(stream)} add primary key ({new_key})")
        else:
            moves.append(
                f"alter table {SCHEMA}.{_q(stream)} drop constraint {_q(stream + '_pkey')},"
                f" add primary key ({new_key})"
            )
    seen["move_key"] = db.sql(*moves)
    seen["moved_load"] = db.load(outputs["new"], "new-after-key-move")
    seen["after_move"] = db.tables(keys)
    if db.engine == "postgres":
        seen["moved_north_load"] = db.load(outputs["north"], "north-on-new-key")
        seen["after_moved_north"] = db.tables(keys)

    # 5. tables dropped and loaded again (what `meltano run --full-refresh` does after a drop)
    db.sql(f"drop schema {SCHEMA} cascade")
    seen["rebuilt_load"] = db.load(outputs["new"], "new-into-dropped-tables")
    seen["rebuilt"] = db.tables(keys)
    return seen


@pytest.fixture(scope="module")
def upgrades(
    installed: Path,  # noqa: F811
    meltano_env: dict[str, str],
    postgres: dict[str, Any],  # noqa: F811
    outputs: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Per target: each step of the upgrade and the tables it left."""
    return {t: _upgrade(t, installed, meltano_env, postgres, outputs) for t in TARGETS}


def _lower(keys: list[str]) -> list[str]:
    return [k.lower() for k in keys]


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("target", TARGETS)
def test_old_output_loads_keyed_without_account(upgrades: dict, outputs: dict, target: str) -> None:
    code, log = upgrades[target]["old_load"]
    assert code == 0, _essence(log)
    for stream, info in upgrades[target]["old"].items():
        assert not info["has_account"], stream
        assert info["primary_key"] == _lower(outputs["old_keys"][stream]), stream
        assert info["rows"] == outputs["rows"][stream], stream


@pytest.mark.parametrize("target", TARGETS)
def test_first_load_after_the_upgrade_fails_on_the_old_key(
    upgrades: dict, outputs: dict, target: str
) -> None:
    """The column is added (null in the old rows), the key is not moved, the load fails."""
    code, log = upgrades[target]["new_load"]
    assert code != 0, f"{target} loaded the new output over the old tables:\n{_essence(log)}"
    assert DUPLICATE_KEY[target] in log, _essence(log)
    for stream, info in upgrades[target]["after_new"].items():
        assert info["has_account"], f"{target}.{stream}: no account column"
        assert info["accounts"] == {"None": outputs["rows"][stream]}, (
            f"{target}.{stream}: old rows' account {info['accounts']}"
        )
        assert info["primary_key"] == _lower(outputs["old_keys"][stream]), (
            f"{target}.{stream}: key {info['primary_key']} after the new load"
        )
        assert info["unique"] == upgrades[target]["old"][stream]["unique"], stream
        assert info["duplicated_old_keys"] == 0, stream
        assert info["batched_at"] == upgrades[target]["old"][stream]["batched_at"], (
            f"{target}.{stream}: rows changed by the failed load"
        )


@pytest.mark.parametrize("target", TARGETS)
def test_setting_account_on_the_old_rows_lets_the_load_upsert(
    upgrades: dict, outputs: dict, target: str
) -> None:
    """After `UPDATE ... SET account = 'default' WHERE account IS NULL` the load updates the
    old rows in place (one row per key, every row rewritten); the old primary key stays."""
    assert all("error" not in r for r in upgrades[target]["update"]), upgrades[target]["update"]
    code, log = upgrades[target]["updated_load"]
    assert code == 0, _essence(log)
    for stream, info in upgrades[target]["after_update"].items():
        rows = outputs["rows"][stream]
        assert info["rows"] == rows, f"{target}.{stream}: {info['rows']} rows, {rows} keys"
        assert info["accounts"] == {"default": rows}, info["accounts"]
        assert info["duplicated_old_keys"] == 0, stream
        assert info["duplicated_new_keys"] == 0, stream
        before = set(upgrades[target]["after_new"][stream]["batched_at"])
        assert not before & set(info["batched_at"]), f"{target}.{stream}: rows not rewritten"
        assert info["primary_key"] == _lower(outputs["old_keys"][stream]), info["primary_key"]


@pytest.mark.parametrize("target", TARGETS)
def test_the_old_key_still_refuses_a_second_account(
    upgrades: dict, outputs: dict, target: str
) -> None:
    """Until the key is moved, another account's row with the same old key is a duplicate."""
    code, log = upgrades[target]["north_load"]
    assert code != 0, f"{target} loaded a second account over the old key"
    assert DUPLICATE_KEY[target] in log, _essence(log)
    for stream, info in upgrades[target]["after_north"].items():
        assert info["accounts"] == {"default": outputs["rows"][stream]}, info["accounts"]


def test_target_postgres_primary_key_can_be_moved_in_place(upgrades: dict, outputs: dict) -> None:
    seen = upgrades["target-postgres"]
    assert all("error" not in r for r in seen["move_key"]), seen["move_key"]
    code, log = seen["moved_load"]
    assert code == 0, _essence(log)
    for stream, info in seen["after_move"].items():
        assert info["primary_key"] == _lower(outputs["keys"][stream]), info["primary_key"]
        assert info["rows"] == outputs["rows"][stream], stream
        assert info["duplicated_new_keys"] == 0, stream
    code, log = seen["moved_north_load"]
    assert code == 0, _essence(log)
    for stream, info in seen["after_moved_north"].items():
        rows = outputs["rows"][stream]
        assert info["accounts"] == {"default": rows, "north": rows}, info["accounts"]
        assert info["duplicated_new_keys"] == 0, stream


def test_duckdb_cannot_change_a_primary_key_in_place(upgrades: dict, outputs: dict) -> None:
    """DuckDB 1.1.3 (pinned for target-duckdb): `ALTER TABLE ... ADD PRIMARY KEY` is not
    implemented (nor is dropping a constraint); the table keeps the old key."""
    seen = upgrades["target-duckdb"]
    assert all(
        "No support for that ALTER TABLE option" in r.get("error", "") for r in seen["move_key"]
    ), seen["move_key"]
    code, log = seen["moved_load"]
    assert code == 0, _essence(log)
    for stream, info in seen["after_move"].items():
        assert info["primary_key"] == _lower(outputs["old_keys"][stream]), info["primary_key"]


@pytest.mark.parametrize("target", TARGETS)
def test_dropped_tables_are_created_with_the_new_key(
    upgrades: dict, outputs: dict, target: str
) -> None:
    code, log = upgrades[target]["rebuilt_load"]
    assert code == 0, _essence(log)
    for stream, info in upgrades[target]["rebuilt"].items():
        assert info["primary_key"] == _lower(outputs["keys"][stream]), info["primary_key"]
        assert info["rows"] == outputs["rows"][stream], stream
        assert info["accounts"] == {"default": outputs["rows"][stream]}, info["accounts"]
