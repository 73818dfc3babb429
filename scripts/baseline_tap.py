"""Baseline for scripts/bench.py: a plain singer-sdk REST tap, as the SDK cookiecutter writes it.

It reads Voluum's campaign x hour report (`GET /report`, grouped by campaign + day + hour:
the API's three levels, one row per campaign and hour) over the whole configured range in one
query, with nothing tuned: the default `SingerWriter`, the default type conformance, the default
`RESTStream.parse_response` (`response.json(parse_float=Decimal)` + `records_jsonpath`), an
`OffsetPaginator` of 10,000 rows (it stops on the first empty page, as the SDK does when
`has_more` is not overridden), one request at a time, and the same access-key login as
tap-voluum (`POST /auth/access/session`, `cwauth-token` header). It is not part of the tap.

    python scripts/baseline_tap.py --config baseline.json > /dev/null

Config: access_id, access_key, api_url, start_date, end_date (the report's `from`/`to`,
local wall-clock time in `timezone`), timezone (default UTC).
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from singer_sdk import RESTStream, Stream, Tap
from singer_sdk import typing as th
from singer_sdk.pagination import BaseAPIPaginator, OffsetPaginator

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

PAGE_SIZE = 10_000
GROUP_BY = ["campaign", "day", "hour"]
DIMENSION_FIELDS = (
    "campaignId", "campaignName", "campaignCountry", "campaignWorkspaceId",
    "campaignWorkspaceName", "trafficSourceName",
)
INTEGER_COLUMNS = (
    "visits", "uniqueVisits", "clicks", "conversions", "errors", "impressions", "bids",
    "suspiciousVisits", "suspiciousClicks", *(f"customConversions{n}" for n in range(1, 21)),
)
NUMBER_COLUMNS = (
    "revenue", "cost", "profit", "roi", "cpv", "ctr", "cr", "cv", "epv", "epc", "ap", "ictr",
    "advertiserCost", "ecpa", "ecpc", "ecpm", "rpm", "winRate",
    *(f"customRevenue{n}" for n in range(1, 21)),
)


# --- auth.py -------------------------------------------------------------------------------


class VoluumAccessKeyAuth(requests.auth.AuthBase):
    """Log in once with the access key and send the session token on every request."""

    def __init__(self, api_url: str, access_id: str, access_key: str) -> None:
        self.login_url = api_url.rstrip("/") + "/auth/access/session"
        self.access_id = access_id
        self.access_key = access_key

    @cached_property
    def token(self) -> str:
        response = requests.post(
            self.login_url,
            json={"accessId": self.access_id, "accessKey": self.access_key},
            timeout=60,
        )
        response.raise_for_status()
        return response.json()["token"]

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["cwauth-token"] = self.token
        return request


# --- client.py -----------------------------------------------------------------------------


class VoluumStream(RESTStream):
    """Voluum stream class."""

    records_jsonpath = "$.rows[*]"

    @property
    def url_base(self) -> str:
        return self.config.get("api_url", "https://api.voluum.com").rstrip("/")

    @cached_property
    def authenticator(self) -> VoluumAccessKeyAuth:
        return VoluumAccessKeyAuth(
            self.url_base, self.config["access_id"], self.config["access_key"]
        )

    @property
    def http_headers(self) -> dict:
        return {"Accept": "application/json"}

    def get_new_paginator(self) -> BaseAPIPaginator:
        return OffsetPaginator(start_value=0, page_size=PAGE_SIZE)

    def get_url_params(
        self, context: Context | None, next_page_token: Any | None
    ) -> dict[str, Any]:
        return {"limit": PAGE_SIZE, "offset": next_page_token or 0}

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        return row


# --- streams.py ----------------------------------------------------------------------------


class CampaignHourlyReportStream(VoluumStream):
    """Campaign report, one row per campaign and hour."""

    name = "campaign_hourly_report"
    path = "/report"
    primary_keys = ("day", "hour", "campaignId")
    replication_key = "day"

    schema = th.PropertiesList(
        th.Property("day", th.DateType, required=True),
        th.Property("hour", th.IntegerType, required=True),
        *(th.Property(f, th.StringType) for f in DIMENSION_FIELDS),
        *(th.Property(c, th.IntegerType) for c in INTEGER_COLUMNS),
        *(th.Property(c, th.NumberType) for c in NUMBER_COLUMNS),
    ).to_dict()

    def get_url_params(
        self, context: Context | None, next_page_token: Any | None
    ) -> dict[str, Any]:
        params = super().get_url_params(context, next_page_token)
        params.update(
            {
                "from": _hour(self.config["start_date"]),
                "to": _hour(self.config["end_date"]),
                "tz": self.config.get("timezone", "UTC"),
                "groupBy": GROUP_BY,
                "columns": [p for p in self.schema["properties"] if p not in ("day", "hour")],
                "include": "ALL",
                "sort": "campaignId",
                "direction": "ASC",
            }
        )
        return params


def _hour(value: str) -> str:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:00:00")


# --- tap.py --------------------------------------------------------------------------------


class TapVoluumBaseline(Tap):
    """Cookiecutter-style Voluum tap (benchmark baseline)."""

    name = "tap-voluum-baseline"

    config_jsonschema = th.PropertiesList(
        th.Property("access_id", th.StringType, required=True),
        th.Property("access_key", th.StringType, required=True, secret=True),
        th.Property("api_url", th.StringType, default="https://api.voluum.com"),
        th.Property("start_date", th.DateTimeType, required=True),
        th.Property("end_date", th.DateTimeType, required=True),
        th.Property("timezone", th.StringType, default="UTC"),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        return [CampaignHourlyReportStream(self)]


if __name__ == "__main__":
    TapVoluumBaseline.cli()
