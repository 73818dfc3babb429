"""The tap's wheel ships the tap only: no sandbox module, no test, no script."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
    )
    (path,) = out.glob("tap_voluum-*.whl")
    return zipfile.ZipFile(path)


@pytest.fixture(scope="module")
def wheel_names(wheel: zipfile.ZipFile) -> list[str]:
    return wheel.namelist()


def test_the_wheel_holds_the_tap(wheel_names: list[str]) -> None:
    assert "tap_voluum/tap.py" in wheel_names
    assert "tap_voluum/schemas/campaigns.json" in wheel_names


def test_the_wheel_holds_no_sandbox_code(wheel_names: list[str]) -> None:
    sandbox = [n for n in wheel_names if "sandbox" in n.lower()]
    assert not sandbox, f"sandbox files in the tap's wheel: {sandbox}"
    assert not [n for n in wheel_names if n.startswith(("tests/", "scripts/"))]


def test_the_wheel_declares_no_sandbox_command(wheel: zipfile.ZipFile) -> None:
    (name,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    commands = wheel.read(name).decode()
    assert "tap-voluum = tap_voluum.tap:TapVoluum.cli" in commands
    assert "sandbox" not in commands
