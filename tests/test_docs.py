"""README, Meltano Hub definition and meltano.yml agree with `tap-voluum --about`.

After changing the tap's settings or streams, run `.venv/bin/python scripts/gen_docs.py`.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
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


@pytest.mark.parametrize("name", ["README.md", "hub/tap-voluum.yml", "meltano.yml"])
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
