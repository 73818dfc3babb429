"""README, Meltano Hub definition and meltano.yml agree with `tap-voluum --about`.

After changing the tap's settings or streams, run `.venv/bin/python scripts/gen_docs.py`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = ".venv/bin/python scripts/gen_docs.py"
# What issue #6 asks meltano.yml to declare for the extractor.
REQUIRED_CAPABILITIES = {
    "catalog",
    "discover",
    "state",
    "about",
    "stream-maps",
    "schema-flattening",
    "batch",
}


def _load_gen_docs() -> Any:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_docs = _load_gen_docs()


@pytest.fixture(scope="module")
def about() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tap_voluum", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def expected() -> dict[Path, str]:
    return gen_docs.expected_files()


@pytest.fixture(scope="module")
def hub_settings(about: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in gen_docs.hub_definition(about)["settings"]}


@pytest.fixture(scope="module")
def meltano_yml() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def extractor(meltano_yml: dict[str, Any]) -> dict[str, Any]:
    (found,) = [p for p in meltano_yml["plugins"]["extractors"] if p["name"] == "tap-voluum"]
    return found


def _stale_message(path: Path, current: str, wanted: str) -> str:
    diff = "\n".join(
        difflib.unified_diff(
            current.splitlines(), wanted.splitlines(), "on disk", "generated", lineterm="", n=1
        )
    )
    return f"{path.relative_to(ROOT)} is out of date; run `{REGENERATE}`:\n{diff[:4000]}"


@pytest.mark.parametrize(
    "name", ["README.md", "docs/settings.md", "hub/tap-voluum.yml", "meltano.yml"]
)
def test_generated_file_is_up_to_date(expected: dict[Path, str], name: str) -> None:
    path = ROOT / name
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    wanted = expected[path]
    assert current == wanted, _stale_message(path, current, wanted)


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    assert first_block.split() == ["./scripts/demo.sh", "./scripts/test.sh"]
    assert text.index("```bash") < text.index("\n## "), "the commands come before any section"
    for path in ("scripts/demo.sh", "scripts/test.sh", ".ci/run"):
        assert (ROOT / path).exists(), path


def test_readme_has_the_sections_others_fill() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\n## Benchmark\n" in text, "the benchmark script fills this section"
    assert "\n## Streams\n" in text
    assert "| Stream | Endpoint | Primary key |" in text


README_MAX_LINES = 400
README_SECTIONS = [
    "Using it with Meltano",
    "Pointing it at the real Voluum API",
    "Settings",
    "Streams",
    "Custom reports",
    "Many accounts",
    "Running it every day",
    "Past days that change",
    "Errors you may see",
    "Development",
    "Benchmark",
]


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_fits_in_one_read() -> None:
    lines = _readme().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move detail to docs/"


def test_readme_sections_in_order() -> None:
    headings = [line[3:] for line in _readme().splitlines() if line.startswith("## ")]
    assert headings == README_SECTIONS


def test_readme_first_screen_says_how_to_test_without_postgres() -> None:
    first_section = _readme().split("\n## ", 1)[0]
    assert './scripts/test.sh -m "not slow"' in first_section


def test_readme_lists_only_the_taps_own_settings(about: dict[str, Any]) -> None:
    text = _readme()
    block = text.split(gen_docs.ABOUT_BEGIN, 1)[1].split(gen_docs.ABOUT_END, 1)[0]
    rows = [line.split("|")[1].strip() for line in block.splitlines() if line.startswith("| ")]
    own = gen_docs.own_settings(about)
    assert rows == ["Setting", *own], rows
    assert "restatement_days" in own and "stream_maps" not in own
    assert "`stream_maps`" in block, "the SDK's built-ins are named in one line"


def test_readme_links_to_files_that_exist() -> None:
    targets = re.findall(r"\]\(((?:docs|benchmarks|hub|sandbox)/[^)#\s]*)", _readme())
    assert targets, "README links into docs/"
    missing = sorted({t for t in targets if not (ROOT / t).exists()})
    assert not missing, f"README links to missing files: {missing}"


# ------------------------------------------------------------------------- the code map

_TICKED = re.compile(r"`([^`]+)`")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def code_map_names(text: str) -> list[str]:
    """The backticked names of the README's code map (from "Code map:" to the next section)."""
    start = text.index("Code map:")
    end = text.index("\n## ", start)
    return _TICKED.findall(text[start:end])


def _tap_modules() -> list[ModuleType]:
    import tap_voluum

    names = [
        m.name
        for m in pkgutil.walk_packages(tap_voluum.__path__, "tap_voluum.")
        if not m.name.endswith("__main__")  # importing it runs the tap
    ]
    return [tap_voluum, *(importlib.import_module(name) for name in names)]


def code_map_problem(name: str, modules: list[ModuleType], settings: set[str]) -> str | None:
    """Why `name` names nothing in the project, or None.

    A name is a file (`tap.py`, `streams/windows.py` under tap_voluum/, or a path from the
    root), a module's member (`sdk_compat.build_tap`), a class or function of the tap
    (`RestatedDays.unit_done`, `retrying`), or one of the tap's settings (`start_date`).
    """
    if "/" in name or name.endswith(".py"):
        found = (ROOT / name).exists() or (ROOT / "tap_voluum" / name).exists()
        return None if found else f"{name}: no such file"
    if not _DOTTED.match(name):
        return f"{name}: not a name (write it without backticks)"
    if name in settings:
        return None
    first, *rest = name.split(".")
    roots: list[Any] = [m for m in modules if m.__name__.rsplit(".", 1)[-1] == first]
    roots += [
        vars(m)[first]
        for m in modules
        if first in vars(m)
        and str(getattr(vars(m)[first], "__module__", "")).startswith("tap_voluum")
    ]
    for root in roots:
        found = root
        try:
            for attr in rest:
                found = getattr(found, attr)
        except AttributeError:
            continue
        return None
    return f"{name}: not found in tap_voluum"


def test_code_map_names_exist() -> None:
    from tap_voluum.tap import TapVoluum

    names = code_map_names(_readme())
    assert len(names) >= 30, names
    modules = _tap_modules()
    settings = set(TapVoluum.config_jsonschema["properties"])
    problems = [p for name in names if (p := code_map_problem(name, modules, settings))]
    assert not problems, "README code map: " + "; ".join(problems)


def test_code_map_check_catches_a_wrong_name() -> None:
    modules = _tap_modules()
    for wrong in ("RestatedDays.dayz", "sdk_compat.no_such_door", "windowz.py", "NoSuchClass"):
        assert code_map_problem(wrong, modules, set()), wrong
    for right in ("RestatedDays.days", "sdk_compat.build_tap", "streams/windows.py", "retrying"):
        assert code_map_problem(right, modules, set()) is None, right


def test_ci_runs_the_readme_test_command() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "set -euo pipefail" in lines
    assert lines[-1] == "./scripts/test.sh"


def test_hub_definition_is_complete(about: dict[str, Any]) -> None:
    hub = yaml.safe_load((ROOT / "hub" / "tap-voluum.yml").read_text(encoding="utf-8"))
    for key in ("name", "namespace", "variant", "label", "description", "pip_url", "repo"):
        assert hub.get(key), f"hub definition lacks {key}"
    assert hub["namespace"] == "tap_voluum"
    assert "meltano_sdk" in hub["keywords"]
    assert set(hub["capabilities"]) == set(about["capabilities"])
    assert hub["settings_group_validation"] == [
        ["access_id", "access_key", "start_date"],
        ["accounts", "start_date"],
    ]
    kinds = {s["name"]: s for s in hub["settings"]}
    assert kinds["access_key"]["kind"] == "password"
    assert kinds["access_key"]["sensitive"] is True
    assert kinds["accounts"]["sensitive"] is True  # it holds every account's access key
    # hub-utils would make every name with "id" a password; these are not secret.
    for name in ("access_id", "workspace_ids"):
        assert kinds[name]["kind"] != "password"
        assert not kinds[name].get("sensitive")


def test_meltano_yml_extractor(extractor: dict[str, Any], about: dict[str, Any]) -> None:
    assert extractor["namespace"] == "tap_voluum"
    assert extractor["pip_url"] == "-e ."
    assert extractor["executable"] == "tap-voluum"
    capabilities = set(extractor["capabilities"])
    assert capabilities >= REQUIRED_CAPABILITIES
    assert capabilities <= set(about["capabilities"]), "declares what the tap does not advertise"
    assert extractor["select"], "example select patterns"
    assert extractor["settings_group_validation"] == [["access_id", "access_key", "start_date"]]


def test_meltano_yml_lists_every_setting(
    extractor: dict[str, Any], hub_settings: dict[str, dict[str, Any]]
) -> None:
    declared = {s["name"]: s for s in extractor["settings"]}
    missing = sorted(set(hub_settings) - set(declared))
    unknown = sorted(set(declared) - set(hub_settings))
    assert not missing, f"meltano.yml lacks settings {missing}"
    assert not unknown, f"meltano.yml declares settings the tap does not have: {unknown}"
    problems = []
    for name, want in hub_settings.items():
        got = declared[name]
        for key in ("label", "description", "kind"):
            if not got.get(key):
                problems.append(f"{name}: no {key}")
        if got.get("kind") != want["kind"]:
            problems.append(f"{name}: kind {got.get('kind')!r}, --about says {want['kind']!r}")
        if bool(got.get("sensitive")) != bool(want.get("sensitive")):
            problems.append(f"{name}: sensitive {got.get('sensitive')!r}")
        if got.get("value") != want.get("value"):
            problems.append(f"{name}: default {got.get('value')!r}, --about {want.get('value')!r}")
        if want.get("options") and got.get("options") != want["options"]:
            problems.append(f"{name}: options differ from --about")
    assert not problems, "\n".join(problems)


def test_meltano_yml_secrets(extractor: dict[str, Any], about: dict[str, Any]) -> None:
    declared = {s["name"]: s for s in extractor["settings"]}
    secret = {n for n, s in about["settings"]["properties"].items() if s.get("secret")}
    assert secret == {"access_key"}
    for name in secret:
        assert declared[name]["kind"] == "password"
        assert declared[name]["sensitive"] is True
    assert declared["access_id"]["kind"] == "string"
    assert not declared["access_id"].get("sensitive")
    text = (ROOT / "meltano.yml").read_text(encoding="utf-8")
    assert "access_key:" not in text, "no secret value in meltano.yml"


def test_meltano_yml_plugins_never_need_the_hub(meltano_yml: dict[str, Any]) -> None:
    plugins = meltano_yml["plugins"]
    loaders = {p["name"]: p for p in plugins["loaders"]}
    assert set(loaders) >= {"target-duckdb", "target-postgres"}
    for plugin in [*plugins["extractors"], *plugins["loaders"]]:
        for key in ("namespace", "pip_url", "executable", "settings"):
            assert plugin.get(key), f"{plugin['name']} lacks {key}"
    duckdb = loaders["target-duckdb"]["pip_url"].split()
    assert "duckdb==1.1.3" in duckdb
    assert any(p.startswith("target-duckdb==") for p in duckdb)
    assert loaders["target-postgres"]["pip_url"].startswith("meltanolabs-target-postgres==")
    assert loaders["target-postgres"]["config"]["load_method"] == "upsert"
    assert meltano_yml.get("send_anonymous_usage_stats") is False


def test_meltano_yml_sandbox_environment(meltano_yml: dict[str, Any]) -> None:
    environments = {e["name"]: e for e in meltano_yml["environments"]}
    assert meltano_yml["default_environment"] == "sandbox"
    (tap,) = [
        p
        for p in environments["sandbox"]["config"]["plugins"]["extractors"]
        if p["name"] == "tap-voluum"
    ]
    url = urlparse(tap["config"]["api_url"])
    assert (url.scheme, url.hostname, url.port) == ("http", "127.0.0.1", 8080)
    assert "access_id" not in tap["config"], "credentials come from TAP_VOLUUM_ACCESS_ID/_KEY"
    assert "prod" in environments
