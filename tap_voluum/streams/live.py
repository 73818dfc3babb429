"""Latest clicks and visits of each campaign: `GET /report/live/{clicks|visits}/{campaignId}`."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import msgspec
from typing_extensions import override

from tap_voluum.streams.base import VoluumStream
from tap_voluum.streams.conversions import voluum_timestamp
from tap_voluum.streams.entities import CampaignsStream
from tap_voluum.streams.fields import EVENT_FIELDS, KEY_STRING, KEY_TIMESTAMP, STRING

if TYPE_CHECKING:
    from collections.abc import Iterable

    import requests
    from singer_sdk.helpers.types import Context

LIVE_LIMIT = 1000  # the most recent events Voluum hands out per campaign
_FIELDS = (*EVENT_FIELDS, "referrer", "userAgent")


class LiveEventsStream(VoluumStream):
    """The newest events of one campaign, incremental on `timestamp`, one bookmark per campaign.

    Voluum returns only the latest events, not a range, so each sync keeps those at or
    after the campaign's bookmark. Archived campaigns are skipped.
    """

    parent_stream_type = CampaignsStream
    primary_keys: ClassVar[tuple[str, ...]] = ("clickId",)
    replication_key = "timestamp"
    is_sorted = True
    records_key = "rows"
    absent_means = "this account has no live click/visit reports"
    schema: ClassVar[dict] = {
        "type": "object",
        "properties": {
            "timestamp": KEY_TIMESTAMP,
            "clickId": KEY_STRING,
            "campaignId": KEY_STRING,
            **{field: STRING for field in _FIELDS},
        },
    }

    @override
    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        """As many recent events as Voluum gives, timestamps in the report zone."""
        return {"limit": LIVE_LIMIT, "tz": str(self.settings(context)["timezone"])}

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        """Stop asking once Voluum said the endpoint does not exist for this account."""
        if self.endpoint_absent:
            return
        since = self.get_starting_timestamp(context)
        for record in super().get_records(context):
            if since is None or datetime.fromisoformat(record["timestamp"]) >= since:
                yield record

    @override
    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """A row that does not say its campaign (null, "") is of the campaign asked for."""
        if not row.get("campaignId") and context and context.get("campaignId"):
            row["campaignId"] = context["campaignId"]
        return super().post_process(row, context)

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        """Oldest first, with ISO timestamps, so the bookmark can follow the rows."""
        asked = parse_qs(urlsplit(response.request.url or "").query).get("tz")
        tz = ZoneInfo(asked[0] if asked else str(self.config["timezone"]))
        rows = []
        for row in super().parse_response(response):
            row["timestamp"] = voluum_timestamp(row.get("timestamp"), tz)
            rows.append(self.shape.fit(row))  # keys as text before they are compared
        self.identify(rows)
        rows.sort(
            key=lambda row: tuple(row.get(k) or "" for k in ("timestamp", *self.primary_keys))
        )
        return rows

    def identify(self, rows: list[dict]) -> None:
        """Give rows their key fields, if they lack them (clicks carry `clickId`)."""


class LiveClicksStream(LiveEventsStream):
    """`GET /report/live/clicks/{campaignId}`."""

    name = "live_clicks"
    path = "/report/live/clicks/{campaignId}"


class LiveVisitsStream(LiveEventsStream):
    """`GET /report/live/visits/{campaignId}`, keyed by `visitKey`.

    Public clients disagree on whether a visit carries a `clickId`, so a visit's key is a
    digest of everything Voluum says about it but `clickId`, plus its rank among visits
    identical in every field (which nothing else tells apart): one record per visit,
    whichever reading this Voluum follows.
    """

    name = "live_visits"
    path = "/report/live/visits/{campaignId}"
    primary_keys: ClassVar[tuple[str, ...]] = ("visitKey",)
    schema: ClassVar[dict] = {
        "type": "object",
        "properties": {
            "visitKey": KEY_STRING,
            **LiveEventsStream.schema["properties"],
            "clickId": STRING,
        },
    }

    def identify(self, rows: list[dict]) -> None:
        """`visitKey`: digest of the visit without `clickId`, and its rank among twins."""
        seen: Counter[str] = Counter()
        for row in rows:
            fields = {k: v for k, v in row.items() if k not in ("clickId", "visitKey")}
            digest = hashlib.sha256(msgspec.json.encode(fields, order="sorted")).hexdigest()[:24]
            row["visitKey"] = f"{digest}-{seen[digest]}"
            seen[digest] += 1
