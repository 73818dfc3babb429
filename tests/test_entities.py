"""Entity streams against the sandbox: every entity, archived ones included, typed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tap_voluum.streams.entities import normalize_country
from tests.conftest import config_for
from tests.helpers import run_tap
from tests.truth import ENTITY_STREAMS

if TYPE_CHECKING:
    from voluum_sandbox import SandboxServer


@pytest.fixture(scope="module")
def synced(sandbox: SandboxServer):
    return run_tap(config_for(sandbox), {*ENTITY_STREAMS, "workspaces"})


@pytest.mark.parametrize("stream", sorted(ENTITY_STREAMS))
def test_every_entity_arrives_archived_included(
    synced, sandbox: SandboxServer, stream: str
) -> None:
    expected = {e["id"]: e for e in sandbox.dataset.entities(ENTITY_STREAMS[stream])}
    got = {r["id"]: r for r in synced.records[stream]}
    assert got.keys() == expected.keys()
    assert len(synced.records[stream]) == len(expected)  # no duplicates
    for entity_id, entity in expected.items():
        record = got[entity_id]
        assert record["name"] == entity["name"]
        assert record.get("deleted", False) == entity.get("deleted", False)


def test_archived_entities_are_flagged(synced) -> None:
    archived = [r for r in synced.records["campaigns"] if r["deleted"]]
    active = [r for r in synced.records["campaigns"] if not r["deleted"]]
    assert archived and active


def test_country_has_one_shape_whatever_voluum_sends(synced, sandbox: SandboxServer) -> None:
    raw = sandbox.dataset.entities("campaign") + sandbox.dataset.entities("offer")
    shapes = {type(e.get("country")).__name__ for e in raw if e.get("country") is not None}
    assert shapes == {"dict", "str"}, "the sandbox should send both shapes"
    for stream in ("campaigns", "offers", "landers"):
        for record in synced.records[stream]:
            country = record.get("country")
            assert country is None or isinstance(country, dict)


def test_normalize_country() -> None:
    assert normalize_country("us") == {"code": "US", "name": None}
    assert normalize_country("United States") == {"code": None, "name": "United States"}
    assert normalize_country({"code": "DE", "name": "Germany"}) == {"code": "DE", "name": "Germany"}
    assert normalize_country(None) is None


def test_timestamps_and_nested_objects_keep_their_types(synced) -> None:
    schema = synced.schemas["campaigns"]["schema"]["properties"]
    assert schema["updatedTime"]["format"] == "date-time"
    assert "object" in schema["workspace"]["type"]
    record = synced.records["campaigns"][0]
    assert isinstance(record["workspace"], dict)
    assert isinstance(record["deleted"], bool)


def test_unicode_names_survive(synced, sandbox: SandboxServer) -> None:
    names = {r["name"] for stream in ENTITY_STREAMS for r in synced.records[stream]}
    assert any(not name.isascii() for name in names)


def test_workspaces_listed_for_a_multi_user_account(synced, sandbox: SandboxServer) -> None:
    expected = {w["id"] for w in sandbox.dataset.entities("workspace")}
    assert {r["id"] for r in synced.records["workspaces"]} == expected


@pytest.mark.parametrize("status", [403, 404])
def test_single_user_account_has_no_workspaces(
    fresh_sandbox: SandboxServer, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    fresh_sandbox.configure(workspaces_status=status)
    caplog.set_level("INFO")
    result = run_tap(config_for(fresh_sandbox), {"workspaces", "campaigns"})
    assert result.records["workspaces"] == []
    assert result.records["campaigns"]
    said = [r for r in caplog.records if "single-user account" in r.getMessage()]
    assert len(said) == 1


def test_no_field_of_the_sandbox_is_dropped(synced, sandbox: SandboxServer) -> None:
    for stream, kind in ENTITY_STREAMS.items():
        properties = set(synced.schemas[stream]["schema"]["properties"])
        sent = set().union(*(e.keys() for e in sandbox.dataset.entities(kind)))
        assert sent <= properties, f"{stream} would drop {sent - properties}"
