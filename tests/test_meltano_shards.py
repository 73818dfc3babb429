"""An agency's accounts split over two Meltano plugins (shards), and the daily job and schedule.

One sandbox serves four accounts behind one address (15 requests a second for all). A copy of
the project's meltano.yml in a temporary directory adds two extractors that inherit from
`tap-voluum`: `shard-a` reads accounts north and south, `shard-b` east and west, each from its
own `<SHARD>_ACCOUNTS` variable (the keys are secrets: never in meltano.yml). Both shards load
one DuckDB file, one after the other: the realistic warehouse, and DuckDB takes one writing
process at a time (shards into PostgreSQL or a cloud warehouse may run at once).

Checked against the sandbox's truth (`tests/truth.py`): after each `meltano run shard-x
target-duckdb`, each account's rows of `campaigns`, `offers` and `campaign_report` equal that
account's data, and only the accounts of the shards run so far are there. Meltano keeps one
state per shard (`meltano state list`); a second run of shard A leaves shard B's state byte for
byte as it was; shard B failing (a wrong access key for west) exits non-zero and leaves shard
A's rows (their `_sdc_batched_at` included) and state untouched, keeps its accounts' bookmarks,
and run again with the right key loads every account.

The plugin environments are the ones tests/test_meltano.py uses (.meltano/, brought up to date
by `meltano install tap-voluum target-duckdb` in the repository); the copy runs with
`--no-install` and MELTANO_SYS_DIR_ROOT pointing at them, so nothing is installed from the
temporary directory. A quick test checks that Meltano accepts meltano.yml's daily job and
schedule (`meltano job list`, `meltano schedule list`, `meltano run --dry-run`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.helpers import bookmarks_of
from tests.test_meltano import (  # noqa: F401 - `meltano` and `timings` are fixtures
    MELTANO,
    PLUGIN_PYTHON,
    ROOT,
    RUN_TIMEOUT,
    _essence,
    _run,
    _skip_if_unreachable,
    meltano,
    timings,
)
from tests.truth import assert_daily_report_matches, assert_entities_match
from voluum_sandbox import Dataset, SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator

SHARDS = {"shard-a": ("north", "south"), "shard-b": ("east", "west")}
NAMES = (*SHARDS["shard-a"], *SHARDS["shard-b"])
STREAMS = ("campaigns", "offers", "campaign_report")
SCHEMA = "tap_voluum"
START, END, TZ = datetime(2026, 3, 2), datetime(2026, 3, 4), "UTC"
WRONG_KEY = "sandbox-key-" + "0" * 32

# Run with target-duckdb's own Python: every row of the schema's tables, as JSON.
DUMP = r"""
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
out = {}
for (table,) in con.execute(
    "select table_name from information_schema.tables where table_schema = ?", [sys.argv[2]]
).fetchall():
    cursor = con.execute(f'select * from "{sys.argv[2]}"."{table}"')
    names = [d[0] for d in cursor.description]
    out[table] = [dict(zip(names, row)) for row in cursor.fetchall()]
print(json.dumps(out, default=str))
"""

# Record fields the truth checks read, by the lower-case name a DuckDB column may have.
FIELDS = {
    name.lower(): name
    for name in (
        "account", "id", "name", "day", "campaignId", "visits", "uniqueVisits", "clicks",
        "conversions", "errors", "impressions", "revenue", "cost",
        *(f"customConversions{n}" for n in range(1, 6)),
        *(f"customRevenue{n}" for n in range(1, 6)),
    )
}  # fmt: skip


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def datasets() -> list[Dataset]:
    """Four small accounts: three or four campaigns, four days of traffic."""
    return [
        Dataset(seed=seed, start=date(2026, 3, 1), days=4, campaigns=3 + seed % 2)
        for seed in (41, 42, 43, 44)
    ]


@pytest.fixture(scope="module")
def agency(datasets: list[Dataset]) -> Iterator[SandboxServer]:
    """The four accounts on one port, one budget of 15 requests a second per address."""
    server = SandboxServer(accounts=datasets, port=0, rate_limit=15, rate_limit_scope="address")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tap-voluum-shards-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def accounts_json(agency: SandboxServer, shard: str) -> str:
    """A shard's `accounts` setting: its accounts' names and keys."""
    accounts = dict(zip(NAMES, agency.accounts, strict=True))
    return json.dumps(
        [
            {
                "name": name,
                "access_id": accounts[name].access_id,
                "access_key": accounts[name].access_key,
            }
            for name in SHARDS[shard]
        ]
    )


@pytest.fixture(scope="module")
def env(agency: SandboxServer, workdir: Path) -> dict[str, str]:
    """Every Meltano command's environment: the sandbox, the shards' accounts, one DuckDB."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_VOLUUM", "SHARD_", "TARGET_DUCKDB", "MELTANO_"))
    }
    return {
        **clean,
        "NO_COLOR": "1",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_ENVIRONMENT": "sandbox",
        "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",
        "MELTANO_SYS_DIR_ROOT": str(ROOT / ".meltano"),
        # Read by both shards (a plugin's namespace prefix, tap_voluum, is inherited) ...
        "TAP_VOLUUM_API_URL": agency.url,
        "TAP_VOLUUM_START_DATE": f"{START.date()}T00:00:00Z",
        "TAP_VOLUUM_END_DATE": f"{END.date()}T00:00:00Z",
        "TAP_VOLUUM_TIMEZONE": TZ,
        "TAP_VOLUUM__SELECT": json.dumps([f"{s}.*" for s in STREAMS]),
        # ... and each shard's own accounts under its own name.
        "SHARD_A_ACCOUNTS": accounts_json(agency, "shard-a"),
        "SHARD_B_ACCOUNTS": accounts_json(agency, "shard-b"),
        "TARGET_DUCKDB_FILEPATH": str(workdir / "warehouse.duckdb"),
    }


@pytest.fixture(scope="module")
def installed(meltano: Path, env: dict[str, str], timings: dict[str, float]) -> Path:  # noqa: F811
    """tap-voluum and target-duckdb in .meltano/, installed from the repository itself."""
    started = time.monotonic()
    result = _run(
        [str(meltano), "install", "tap-voluum", "target-duckdb"],
        timeout=900,
        cwd=ROOT,
        env={k: v for k, v in env.items() if k != "MELTANO_SYS_DIR_ROOT"},
    )
    timings["meltano install tap-voluum target-duckdb"] = time.monotonic() - started
    if result.returncode != 0:
        _skip_if_unreachable("meltano install", result.stdout + result.stderr)
        pytest.fail(f"meltano install failed:\n{_essence(result.stdout + result.stderr)}")
    return meltano


@pytest.fixture(scope="module")
def project(workdir: Path) -> Path:
    """A copy of the project's meltano.yml with two shards inheriting from tap-voluum."""
    path = workdir / "project"
    path.mkdir()
    config = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    config["plugins"]["extractors"] += [
        {"name": shard, "inherit_from": "tap-voluum"} for shard in SHARDS
    ]
    (path / "meltano.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


class Shards:
    """Runs `meltano` commands in the project copy and reads the warehouse."""

    def __init__(self, meltano: Path, project: Path, env: dict[str, str]) -> None:  # noqa: F811
        self.meltano, self.project, self.env = meltano, project, env

    def command(self, *args: str, **env: str) -> Any:
        return _run(
            [str(self.meltano), *args],
            timeout=RUN_TIMEOUT,
            cwd=self.project,
            env={**self.env, **env},
        )

    def run(self, shard: str, **env: str) -> Any:
        """`meltano run SHARD target-duckdb`, with nothing installed from the copy."""
        return self.command("run", "--no-install", shard, "target-duckdb", **env)

    def state(self, shard: str) -> str:
        """`meltano state get` of a shard's state id, as printed."""
        result = self.command("state", "get", f"sandbox:{shard}-to-target-duckdb")
        assert result.returncode == 0, _essence(result.stdout + result.stderr)
        return result.stdout

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of the warehouse's tables, column names as the records spell them."""
        result = _run(
            [
                str(PLUGIN_PYTHON["target-duckdb"]),
                "-c",
                DUMP,
                self.env["TARGET_DUCKDB_FILEPATH"],
                SCHEMA,
            ],
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return {
            table: [{FIELDS.get(k.lower(), k): v for k, v in row.items()} for row in rows]
            for table, rows in json.loads(result.stdout).items()
        }


@pytest.fixture(scope="module")
def story(
    installed: Path,
    project: Path,
    env: dict[str, str],
    timings: dict[str, float],  # noqa: F811
) -> dict[str, Any]:
    """Shard A, B, A again, B failing, B run again (key fixed): what each step left."""
    shards = Shards(installed, project, env)
    seen: dict[str, Any] = {}

    def step(name: str, shard: str, **extra: str) -> None:
        started = time.monotonic()
        result = shards.run(shard, **extra)
        timings[f"meltano run {shard} target-duckdb ({name})"] = time.monotonic() - started
        seen[name] = {"rc": result.returncode, "log": result.stdout + result.stderr}
        if name != "b-fails":
            assert result.returncode == 0, f"{name}:\n{_essence(seen[name]['log'])}"
        seen[name]["tables"] = shards.tables()
        seen[name]["states"] = {s: shards.state(s) for s in SHARDS if s in seen["ran"]}

    seen["ran"] = set()
    for name, shard, extra in (
        ("a", "shard-a", {}),
        ("b", "shard-b", {}),
        ("a-again", "shard-a", {}),
        ("b-fails", "shard-b", {"SHARD_B_ACCOUNTS": accounts_json_wrong(env)}),
        ("b-rerun", "shard-b", {}),
    ):
        seen["ran"].add(shard)
        step(name, shard, **extra)
    listed = shards.command("state", "list")
    seen["state_list"] = listed.stdout + listed.stderr
    return seen


def accounts_json_wrong(env: dict[str, str]) -> str:
    """Shard B's accounts with west's key replaced by a wrong one."""
    accounts = json.loads(env["SHARD_B_ACCOUNTS"])
    for account in accounts:
        if account["name"] == "west":
            account["access_key"] = WRONG_KEY
    return json.dumps(accounts)


# --------------------------------------------------------------------------- the daily job


def project_meltano(*args: str, sys_dir: Path) -> Any:
    """A `meltano` command in the repository's own project; nothing written into .meltano/."""
    if not MELTANO.exists():
        pytest.skip(f"{MELTANO} is missing: ./scripts/test.sh installs the pinned Meltano")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MELTANO_")}
    env |= {
        "NO_COLOR": "1",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_SYS_DIR_ROOT": str(sys_dir),
        "MELTANO_DATABASE_URI": f"sqlite:///{sys_dir / 'meltano.db'}",
    }
    result = _run([str(MELTANO), *args], timeout=120, cwd=ROOT, env=env)
    assert result.returncode == 0, f"meltano {' '.join(args)}:\n{_essence(result.stderr)}"
    return result


def test_daily_job_and_schedule_are_accepted(tmp_path: Path) -> None:
    """meltano.yml's job runs tap-voluum into one of the project's loaders, every day."""
    loaders = {
        p["name"]
        for p in yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))["plugins"][
            "loaders"
        ]
    }
    jobs = json.loads(project_meltano("job", "list", "--format=json", sys_dir=tmp_path).stdout)
    (job,) = [j for j in jobs["jobs"] if j["job_name"] == "voluum-to-warehouse"]
    ((extractor, loader),) = [task.split() for task in job["tasks"]]
    assert extractor == "tap-voluum" and loader in loaders, job
    listed = project_meltano("schedule", "list", "--format=json", sys_dir=tmp_path).stdout
    (schedule,) = [s for s in json.loads(listed)["schedules"]["job"] if s["name"] == "daily-voluum"]
    assert schedule["job"]["name"] == "voluum-to-warehouse"
    minute, hour, *every_day = schedule["cron_interval"].split()
    assert every_day == ["*", "*", "*"] and minute.isdigit() and hour.isdigit(), schedule
    # Meltano resolves the job's plugins and their order (a misspelt plugin fails here).
    project_meltano("run", "--dry-run", "--no-install", "voluum-to-warehouse", sys_dir=tmp_path)


# --------------------------------------------------------------------------- checks


def of(rows: list[dict[str, Any]], account: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["account"] == account]


def assert_account_truth(tables: dict[str, list[dict]], account: str, dataset: Dataset) -> None:
    """One account's rows in the warehouse equal that account's data in the sandbox."""
    assert_entities_match(of(tables["campaigns"], account), dataset, "campaign")
    assert_entities_match(of(tables["offers"], account), dataset, "offer")
    assert_daily_report_matches(
        of(tables["campaign_report"], account), dataset, "campaign", start=START, end=END, tz=TZ
    )


def bookmark(states: dict[str, str], shard: str, account: str) -> str | None:
    """An account's campaign_report bookmark in a shard's state (`meltano state get`)."""
    state = json.loads(states[shard])["singer_state"]
    return bookmarks_of(state, account).get("campaign_report", {}).get("replication_key_value")


def accounts_in(tables: dict[str, list[dict]]) -> dict[str, set[str]]:
    return {stream: {r["account"] for r in tables.get(stream, [])} for stream in STREAMS}


def shard_rows(tables: dict[str, list[dict]], shard: str) -> dict[str, list[dict]]:
    """A shard's rows of every stream, sorted (metadata columns included)."""
    return {
        stream: sorted(
            (r for r in tables[stream] if r["account"] in SHARDS[shard]),
            key=lambda r: json.dumps(r, sort_keys=True, default=str),
        )
        for stream in STREAMS
    }


@pytest.mark.slow
def test_shard_a_loads_its_accounts_alone(story: dict, datasets: list[Dataset]) -> None:
    tables = story["a"]["tables"]
    assert accounts_in(tables) == {s: set(SHARDS["shard-a"]) for s in STREAMS}
    for name, dataset in zip(NAMES[:2], datasets[:2], strict=True):
        assert_account_truth(tables, name, dataset)


@pytest.mark.slow
def test_shard_b_adds_its_accounts_and_leaves_a_rows_alone(
    story: dict, datasets: list[Dataset]
) -> None:
    tables = story["b"]["tables"]
    assert accounts_in(tables) == {s: set(NAMES) for s in STREAMS}
    for name, dataset in zip(NAMES, datasets, strict=True):
        assert_account_truth(tables, name, dataset)
    assert shard_rows(tables, "shard-a") == shard_rows(story["a"]["tables"], "shard-a")


@pytest.mark.slow
def test_each_shard_keeps_its_own_state(story: dict) -> None:
    for shard in SHARDS:
        assert f"sandbox:{shard}-to-target-duckdb" in story["state_list"]
    states = story["b"]["states"]
    for shard, names in SHARDS.items():
        bookmarks = json.loads(states[shard])["singer_state"]["bookmarks"]["campaign_report"]
        accounts = {p["context"]["account"] for p in bookmarks["partitions"]}
        assert accounts == set(names), f"{shard}'s state holds {accounts}"


@pytest.mark.slow
def test_second_run_of_a_leaves_b_state_as_it_was(story: dict, datasets: list[Dataset]) -> None:
    assert story["a-again"]["states"]["shard-b"] == story["b"]["states"]["shard-b"]
    tables = story["a-again"]["tables"]
    for name, dataset in zip(NAMES, datasets, strict=True):
        assert_account_truth(tables, name, dataset)


@pytest.mark.slow
def test_failing_shard_leaves_the_other_untouched(story: dict, datasets: list[Dataset]) -> None:
    failed = story["b-fails"]
    assert failed["rc"] != 0, "shard B with a wrong key for west exited 0"
    before = story["a-again"]
    assert failed["states"]["shard-a"] == before["states"]["shard-a"]
    assert shard_rows(failed["tables"], "shard-a") == shard_rows(before["tables"], "shard-a")
    for name, dataset in zip(NAMES, datasets, strict=True):  # west's rows of the last run kept
        assert_account_truth(failed["tables"], name, dataset)
    assert "1 account failed: west (access key rejected)" in failed["log"]
    assert WRONG_KEY not in failed["log"], "the wrong key is in Meltano's log"


@pytest.mark.slow
def test_failed_shard_run_again_resumes_from_its_state(
    story: dict, datasets: list[Dataset]
) -> None:
    """The failed account keeps its bookmark; the rerun loads all, shard A still untouched."""
    before, failed, rerun = story["a-again"], story["b-fails"], story["b-rerun"]
    for account in SHARDS["shard-b"]:
        assert bookmark(failed["states"], "shard-b", account) == bookmark(
            before["states"], "shard-b", account
        ), account
    assert rerun["rc"] == 0
    for name, dataset in zip(NAMES, datasets, strict=True):
        assert_account_truth(rerun["tables"], name, dataset)
    assert rerun["states"]["shard-a"] == before["states"]["shard-a"]
    assert shard_rows(rerun["tables"], "shard-a") == shard_rows(before["tables"], "shard-a")
