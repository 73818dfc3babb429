"""Every record fits its schema, whatever shape Voluum sends a value in (issue #20 §2).

A full sync of every stream (entities, the built-in reports, a custom report, conversions,
live clicks and visits, the event log, the column dictionary) under the plain sandbox and
under `odd_shapes` (text as `{code, name}`/`{id, name}` objects, null or "", metrics null):
every record validates against its stream's SCHEMA message, formats checked; under the knob
every value is the plain sync's value or null, never a 0 or an object the tap made up.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import jsonschema
import msgspec
import pytest

from tap_voluum.shapes import RowDecoder, Shape
from tap_voluum.streams.fields import INTEGER, KEY_STRING, NUMBER, STRING
from tests.conftest import short_config
from tests.helpers import SyncResult, run_tap
from tests.truth import CUSTOM_COUNTRY, DAILY_REPORTS, SHORT_START
from voluum_sandbox import Dataset, SandboxServer

if TYPE_CHECKING:
    from collections.abc import Iterator

TZ = "America/New_York"
START = SHORT_START
END = datetime(2026, 3, 4)
ENTITIES = (
    "campaigns",
    "offers",
    "landers",
    "flows",
    "traffic_sources",
    "affiliate_networks",
    "workspaces",
)
CUSTOM = CUSTOM_COUNTRY
STREAMS = {
    *DAILY_REPORTS,
    *ENTITIES,
    "campaign_hourly_report",
    "campaign_country",
    "conversions",
    "event_log",
    "live_clicks",
    "live_visits",
    "report_columns",
}
# Keyed alike under both syncs (live visits are keyed by a digest of every field).
COMPARED = STREAMS - {"live_visits"}


# --- the rules, one value at a time ------------------------------------------------------


SCHEMA = {
    "properties": {
        "campaignId": KEY_STRING,
        "campaignName": STRING,
        "countryCode": STRING,
        "os": STRING,
        "visits": INTEGER,
        "revenue": NUMBER,
        "deleted": {"type": ["boolean", "null"]},
        "workspace": {
            "type": ["object", "null"],
            "properties": {"id": STRING, "name": STRING},
        },
        "tags": {"type": ["array", "null"], "items": STRING},
    }
}


@pytest.mark.parametrize(
    ("field", "value", "fitted"),
    [
        ("campaignName", {"id": "c1", "name": "Summer"}, "Summer"),
        ("campaignName", {"code": "SU", "name": "Summer"}, "Summer"),
        ("campaignId", {"id": "c1", "name": "Summer"}, "c1"),
        ("countryCode", {"code": "US", "name": "United States"}, "US"),
        ("os", {"code": "and", "name": "Android"}, "Android"),
        ("os", {"id": "7"}, "7"),
        ("campaignName", "", None),
        ("campaignName", None, None),
        ("campaignId", None, ""),
        ("campaignId", "", ""),
        ("campaignId", {"name": "no id"}, ""),
        ("countryCode", 42, "42"),
        ("visits", None, None),
        ("visits", 3.0, 3),
        ("visits", "12", 12),
        ("visits", "many", None),
        ("revenue", None, None),
        ("revenue", "1.25", 1.25),
        ("revenue", 7, 7),
        ("deleted", "true", True),
        ("deleted", {"value": True}, None),
        (
            "workspace",
            {"id": {"id": "w1", "name": "Public"}, "name": ""},
            {"id": "w1", "name": None},
        ),
        ("workspace", "w1", None),
        ("tags", ["a", "", {"name": "b"}], ["a", None, "b"]),
    ],
)
def test_a_value_is_fitted_to_its_declared_type(field: str, value: Any, fitted: Any) -> None:
    record = {field: value}
    assert Shape(SCHEMA).fit(record) == {field: fitted}


def test_a_clean_page_is_decoded_typed_and_an_odd_one_fitted() -> None:
    fields = ("campaignId", "campaignName", "visits", "revenue", "day")
    decoder = RowDecoder(fields, SCHEMA, untyped=("day",))
    clean = {"rows": [{"campaignId": "c1", "campaignName": "A", "visits": 2, "revenue": 3}]}
    rows = decoder.decode(msgspec.json.encode(clean))
    assert decoder.fitted_pages == 0
    assert msgspec.to_builtins(rows) == [
        {"campaignId": "c1", "campaignName": "A", "visits": 2, "revenue": 3.0}
    ]
    odd = {
        "rows": [
            {"campaignId": {"id": "c1", "name": "A"}, "campaignName": "", "visits": None},
            {"campaignId": "c2", "campaignName": {"code": "B", "name": "Bee"}, "day": "x"},
        ]
    }
    rows = decoder.decode(msgspec.json.encode(odd))
    assert decoder.fitted_pages == 1
    assert rows == [
        {"campaignId": "c1", "campaignName": None, "visits": None},
        {"campaignId": "c2", "campaignName": "Bee", "day": "x"},
    ]


# --- full syncs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> Dataset:
    return Dataset(seed=13, start=date(2026, 3, 1), days=4, campaigns=4)


def _config(server: SandboxServer) -> dict:
    return short_config(server, END)


@pytest.fixture(scope="module")
def syncs(small: Dataset) -> Iterator[dict[str, tuple[SyncResult, list[str]]]]:
    """The plain sync and the `odd_shapes` one, each with its WARNING lines."""
    results: dict[str, tuple[SyncResult, list[str]]] = {}
    for name in ("plain", "odd_shapes"):
        with SandboxServer(dataset=small, port=0, odd_shapes=name == "odd_shapes") as server:
            handler = _Lines()
            logging.getLogger().addHandler(handler)
            try:
                results[name] = (run_tap(_config(server), STREAMS), handler.warnings)
            finally:
                logging.getLogger().removeHandler(handler)
    yield results


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.warnings.append(record.getMessage())


@pytest.mark.parametrize("name", ["plain", "odd_shapes"])
def test_every_record_of_every_stream_fits_its_schema(
    syncs: dict[str, tuple[SyncResult, list[str]]], name: str
) -> None:
    result, warnings = syncs[name]
    assert result.failures == {}
    assert warnings == [], "nulls are absent for reconciliation, not a mismatch"
    assert set(result.records) == STREAMS, STREAMS - set(result.records)
    checker = jsonschema.FormatChecker()
    assert "date-time" in checker.checkers, "rfc3339-validator is installed (test extra)"
    for stream, records in result.records.items():
        assert records, stream
        validator = jsonschema.Draft7Validator(
            result.schemas[stream]["schema"], format_checker=checker
        )
        for record in records:
            errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(_plain(record))]
            assert not errors, (stream, errors[:3])


def test_odd_shapes_reach_every_stream_and_leave_the_plain_values_or_null(
    syncs: dict[str, tuple[SyncResult, list[str]]],
) -> None:
    plain, _ = syncs["plain"]
    odd, _ = syncs["odd_shapes"]
    for stream in STREAMS:
        assert len(odd.records[stream]) == len(plain.records[stream]), stream
    nulled: dict[str, int] = {}
    for stream in COMPARED:
        before, after = plain.keyed(stream), odd.keyed(stream)
        assert after.keys() == before.keys(), stream
        for key, record in after.items():
            for field, value in _flat(record):
                expected = dict(_flat(before[key])).get(field)
                assert value in (expected, None), (stream, key, field, value, expected)
                if value is None and expected is not None:
                    nulled[stream] = nulled.get(stream, 0) + 1
    assert set(nulled) == COMPARED, COMPARED - set(nulled)
    # Metrics Voluum sent as null are written as null, never as a 0 of the tap's.
    metrics = [r.get("visits") for r in odd.records["campaign_report"]]
    assert None in metrics
    for stream in ("live_visits", "event_log"):
        texts = [v for r in odd.records[stream] for _, v in _flat(r) if isinstance(v, str)]
        assert "" not in texts and all(not t.startswith("{") for t in texts), stream


def _flat(record: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for field, value in record.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{field}.")
        else:
            yield f"{prefix}{field}", value


def _plain(value: Any) -> Any:
    """Numbers as JSON gives them (the helpers keep Decimals, jsonschema wants numbers)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and "." not in str(value)
            else float(value)
        )
    return value
