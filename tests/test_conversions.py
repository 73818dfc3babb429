"""The conversion log: every conversion once, timestamps with their offset, a stable key."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from tap_voluum.streams.conversions import voluum_timestamp
from tests.conftest import config_for
from tests.helpers import SyncResult, bookmarks_of, run_tap, total
from tests.truth import assert_conversions_match, cents

if TYPE_CHECKING:
    from voluum_sandbox import Dataset, SandboxServer

TZ = "America/New_York"
START = datetime(2026, 3, 5)
END = datetime(2026, 3, 12)


@pytest.fixture(scope="module")
def synced(sandbox: SandboxServer) -> SyncResult:
    return run_tap(config_for(sandbox, page_size=50), {"conversions"})


def test_every_conversion_once(synced: SyncResult, dataset: Dataset) -> None:
    truth = dataset.conversions_between(START, END, TZ)
    records = synced.records["conversions"]
    assert len(records) == len(truth)
    assert len(synced.keyed("conversions")) == len(records), "the primary key is unique"
    assert total(records, "revenue") * 100 == sum(c["revenue_cents"] for c in truth)
    assert sorted(r["clickId"] for r in records) == sorted(c["clickId"] for c in truth)
    assert_conversions_match(records, dataset)  # type, revenue and campaign of each one


def test_timestamps_are_iso_with_the_local_offset(synced: SyncResult, dataset: Dataset) -> None:
    zone = ZoneInfo(TZ)
    truth = {
        (c["clickId"], c["conversionType"]): c for c in dataset.conversions_between(START, END, TZ)
    }
    for record in synced.records["conversions"]:
        expected = truth[(record["clickId"], record["conversionType"])]
        postback = datetime.fromisoformat(record["postbackTimestamp"])
        assert postback.utcoffset() is not None
        assert int(postback.timestamp()) == expected["postback_ts"]
        assert (
            postback.utcoffset()
            == datetime.fromtimestamp(expected["postback_ts"], zone).utcoffset()
        )
        assert (
            int(datetime.fromisoformat(record["visitTimestamp"]).timestamp())
            == expected["visit_ts"]
        )


def test_replication_key_is_postback_time(synced: SyncResult) -> None:
    schema = synced.schemas["conversions"]
    assert schema["bookmark_properties"] == ["postbackTimestamp"]
    assert schema["key_properties"] == [
        "account",
        "clickId",
        "postbackTimestamp",
        "conversionType",
    ]
    bookmark = bookmarks_of(synced.final_state)["conversions"]["replication_key_value"]
    # Windows move the bookmark, not records: to the start of the last hour read.
    last_hour = (END - timedelta(hours=1)).replace(tzinfo=ZoneInfo(TZ))
    assert bookmark == last_hour.isoformat()
    latest = max(
        datetime.fromisoformat(r["postbackTimestamp"]) for r in synced.records["conversions"]
    )
    assert last_hour <= latest < last_hour + timedelta(hours=1)


def test_a_second_sync_adds_nothing_new_and_keeps_keys(
    synced: SyncResult, sandbox: SandboxServer, dataset: Dataset
) -> None:
    again = run_tap(config_for(sandbox, page_size=50), {"conversions"}, state=synced.final_state)
    assert again.records["conversions"], "the lookback re-reads recent conversions"
    truth = {
        (c["clickId"], c["conversionType"]): c for c in dataset.conversions_between(START, END, TZ)
    }
    for record in again.records["conversions"]:
        expected = truth[(record["clickId"], record["conversionType"])]
        assert cents(record["revenue"]) == expected["revenue_cents"]
        postback = datetime.fromisoformat(record["postbackTimestamp"])
        assert int(postback.timestamp()) == expected["postback_ts"]
    union = {**synced.keyed("conversions"), **again.keyed("conversions")}
    assert_conversions_match(union.values(), dataset)
    first = synced.keyed("conversions")
    for key, record in again.keyed("conversions").items():
        assert first[key] == record


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2026-03-07 11:23:45 PM", "2026-03-07T23:23:45-05:00"),
        ("2026-03-09 12:00:01 AM", "2026-03-09T00:00:01-04:00"),
        ("2026-03-09 12:30:00 PM", "2026-03-09T12:30:00-04:00"),
        ("2026-11-01 01:30:00 AM", "2026-11-01T01:30:00-04:00"),
        ("2026-03-09T04:00:00Z", "2026-03-09T00:00:00-04:00"),
        (None, None),
    ],
)
def test_voluum_timestamps(text: str | None, iso: str | None) -> None:
    assert voluum_timestamp(text, ZoneInfo(TZ)) == iso
