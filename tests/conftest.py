"""Shared fixtures: one Voluum sandbox per test session, and a config pointing at it."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

import pytest

from tests.truth import CUSTOM_COUNTRY, SHORT_END, SHORT_START, TZ
from voluum_sandbox import Dataset, SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator

DATA_START = date(2026, 2, 20)
DATA_DAYS = 30
# Seconds a `slow` test may take (pytest-timeout; the others: `timeout` in pyproject.toml).
# Its module's fixtures may install Meltano and run whole pipelines in its time.
SLOW_TIMEOUT = 1800


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every `slow` test without a timeout of its own `SLOW_TIMEOUT` seconds."""
    if not config.pluginmanager.hasplugin("timeout"):  # pytest-timeout not installed
        return
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    """Deterministic Voluum data around the 2026-03-08 DST change in America/New_York."""
    return Dataset(seed=7, start=DATA_START, days=DATA_DAYS, campaigns=12)


@pytest.fixture(scope="session")
def sandbox(dataset: Dataset) -> Iterator[SandboxServer]:
    """A sandbox with no faults and no latency, shared by the session."""
    server = SandboxServer(dataset=dataset, port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_sandbox(dataset: Dataset) -> Iterator[SandboxServer]:
    """A sandbox of its own, for tests that change knobs or count every request."""
    server = SandboxServer(dataset=dataset, port=0)
    server.start()
    yield server
    server.stop()


def config_for(server: SandboxServer, **overrides: object) -> dict:
    """A valid tap config for a sandbox; overrides win (None: the setting is left unset)."""
    config: dict = {
        "access_id": server.access_id,
        "access_key": server.access_key,
        "api_url": server.url,
        "start_date": "2026-03-05T00:00:00Z",
        "end_date": "2026-03-12T00:00:00Z",
        "timezone": "America/New_York",
        "lookback_days": 2,
        # The restatement check (its own requests) is tested where it is the subject
        # (tests/test_restated_month.py, tests/test_settled.py): off for the rest.
        "restatement_days": 0,
    }
    config.update(overrides)
    return {key: value for key, value in config.items() if value is not None}


@pytest.fixture
def config(sandbox: SandboxServer) -> dict:
    """Config for the shared sandbox."""
    return config_for(sandbox)


def short_config(server: SandboxServer, end: datetime = SHORT_END) -> dict:
    """The full-sync tests' config: local days from 2026-03-02 to `end`, a custom report."""
    return config_for(
        server,
        start_date=SHORT_START.isoformat() + "Z",
        end_date=end.isoformat() + "Z",
        timezone=TZ,
        custom_reports=[CUSTOM_COUNTRY],
    )
