"""singer-sdk's standard tap tests, run against a sandbox started for this module.

Every schema field must show up in the records: the SDK's "Fields in transformed catalog
but not in records" warning is an error here. The only fields left out of the catalog are
the Voluum fields the sandbox does not model (`SANDBOX_LACKS`), and
`test_what_the_catalog_leaves_out_is_really_missing_from_the_sandbox` checks that the
sandbox serves none of them, so the list cannot hide a field the tap fails to fill.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
import requests
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_voluum.streams.dimensions import METRICS
from tap_voluum.streams.reports import BUILT_IN_REPORTS
from tap_voluum.tap import TapVoluum
from tests.truth import ENTITY_STREAMS
from voluum_sandbox import Dataset, SandboxServer

pytestmark = pytest.mark.filterwarnings(
    "error:Fields in transformed catalog but not in records:UserWarning"
)

# The standard test class needs its config when the module is imported.
_SERVER = SandboxServer(
    dataset=Dataset(seed=3, start=date(2026, 3, 1), days=6, campaigns=4), port=0
)
_SERVER.start()

START = datetime(2026, 3, 2, tzinfo=timezone.utc)
CONFIG = {
    "access_id": _SERVER.access_id,
    "access_key": _SERVER.access_key,
    "api_url": _SERVER.url,
    "start_date": START.isoformat().replace("+00:00", "Z"),
    "end_date": "2026-03-05T00:00:00Z",
    "timezone": "Europe/Berlin",
    "custom_reports": [{"name": "country_os", "group_by": ["country", "os"]}],
}
REPORTS = {*(d.name for d in BUILT_IN_REPORTS), "country_os"}

# Voluum report metrics the sandbox does not model (it has 5 custom conversion slots).
_UNMODELLED_METRICS = frozenset(
    {
        "bids",
        "winRate",
        "suspiciousVisits",
        "suspiciousClicks",
        "advertiserCost",
        *(f"customConversions{n}" for n in range(6, 21)),
        *(f"customRevenue{n}" for n in range(6, 21)),
    }
)
# Entity fields Voluum serves (on some accounts) that the sandbox's entities never carry.
SANDBOX_LACKS: dict[str, frozenset[str]] = {
    **dict.fromkeys(REPORTS, _UNMODELLED_METRICS),
    "campaigns": frozenset({"notes", "clickRedirectType"}),
    "offers": frozenset({"notes"}),
    "landers": frozenset({"notes"}),
    "flows": frozenset({"notes", "namePostfix"}),
    "traffic_sources": frozenset({"notes", "pixelRedirectUrl"}),
    "affiliate_networks": frozenset({"notes", "offerUrlTemplate", "currencyCode", "postbackUrl"}),
    "conversions": frozenset({"cost"}),
}


def catalog_without_unmodelled_fields() -> dict:
    """The discovered catalog, every stream selected, minus `SANDBOX_LACKS`."""
    tap = TapVoluum(config=CONFIG, validate_config=TapVoluum.dynamic_catalog, setup_mapper=False)
    catalog = tap.catalog_dict
    for entry in catalog["streams"]:
        lacks = SANDBOX_LACKS.get(entry["tap_stream_id"], frozenset())
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = True
            elif item["breadcrumb"][-1] in lacks:
                item["metadata"]["selected"] = False
    return catalog


TestTapVoluum = get_tap_test_class(
    TapVoluum,
    config=CONFIG,
    catalog=catalog_without_unmodelled_fields(),
    suite_config=SuiteConfig(max_records_limit=200),
)


def _sandbox_get(path: str, **params: object) -> dict:
    login = requests.post(
        f"{_SERVER.url}/auth/access/session",
        json={"accessId": _SERVER.access_id, "accessKey": _SERVER.access_key},
        timeout=10,
    )
    answer = requests.get(
        f"{_SERVER.url}{path}",
        params=params,
        headers={"cwauth-token": login.json()["token"]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_what_the_catalog_leaves_out_is_really_missing_from_the_sandbox() -> None:
    window = {"from": "2026-03-02", "to": "2026-03-05", "tz": "Europe/Berlin", "include": "ALL"}
    report = _sandbox_get("/report", groupBy=["campaign", "day"], **window)
    served = {key for row in report["rows"] for key in row}
    served |= {c["key"] for c in _sandbox_get("/column/info")["columnMappings"]}
    assert report["rows"]
    assert set(METRICS) >= _UNMODELLED_METRICS, "only Voluum metrics the tap declares"
    assert not _UNMODELLED_METRICS & served
    assert not {"day", "hour"} & _UNMODELLED_METRICS, "a report's time fields are always tested"
    for stream, kind in ENTITY_STREAMS.items():
        entities = _SERVER.dataset.entities(kind)
        assert entities
        carried = set().union(*(e.keys() for e in entities))
        assert not SANDBOX_LACKS.get(stream, frozenset()) & carried, stream
    conversions = _sandbox_get("/report/conversions", limit=1000, **window)["rows"]
    assert conversions
    assert not SANDBOX_LACKS["conversions"] & {key for row in conversions for key in row}


def test_the_range_holds_event_log_entries() -> None:
    """So the SDK's returns_record test really runs for event_log (it is not skipped)."""
    since = START.timestamp() * 1000
    assert [e for e in _SERVER.dataset.event_log if e["editTime"] >= since]


def test_daily_reports_declare_no_hour_column() -> None:
    tap = TapVoluum(config=CONFIG)
    for name in REPORTS:
        properties = tap.streams[name].schema["properties"]
        assert "day" in properties
        assert ("hour" in properties) == (name == "campaign_hourly_report"), name
