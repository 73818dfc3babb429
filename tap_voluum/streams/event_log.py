"""`GET /event-log`: who created, changed, archived or restored which entity, and when."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
from singer_sdk.pagination import OffsetPaginator

from tap_voluum.client import VoluumStream, decoded

if TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context

STRING = {"type": ["string", "null"]}
PAGE_SIZE = 1000


class TotalRowsPaginator(OffsetPaginator):
    """Offset paging that stops at Voluum's `totalRows`."""

    def has_more(self, response: requests.Response) -> bool:
        """More pages while the next offset is below `totalRows`."""
        payload = decoded(response)
        total = int(payload.get("totalRows") or 0) if isinstance(payload, dict) else 0
        return self.current_value + self._page_size < total


def change_hash(entry: dict) -> str:
    """A short, stable digest of what an entry changed (with the rest of its key, unique)."""
    return hashlib.sha256(
        msgspec.json.encode(entry.get("changes") or [], order="sorted")
    ).hexdigest()[:16]


class EventLogStream(VoluumStream):
    """Account audit trail, incremental on `editTime`.

    Voluum gives entries no documented id: the key is the edit time (milliseconds), the
    entity, the action and a digest of the changes, so two edits in one second stay two rows.
    """

    name = "event_log"
    path = "/event-log"
    records_key = "eventLogEntries"
    primary_keys: ClassVar[tuple[str, ...]] = ("editTime", "entityId", "actionType", "changeHash")
    replication_key = "editTime"
    is_sorted = True
    absent_means = "this account has no event log"
    schema: ClassVar[dict] = {
        "type": "object",
        "properties": {
            "editTime": {"type": ["string"], "format": "date-time"},
            "editTimeMs": {"type": ["integer", "null"]},
            "entityId": {"type": ["string"]},
            "actionType": {"type": ["string"]},
            "changeHash": {"type": ["string"]},
            "id": STRING,
            "category": STRING,
            "entityName": STRING,
            "userId": STRING,
            "userName": STRING,
            "clientId": STRING,
            "changes": {"type": ["array", "null"], "items": {}},
        },
    }

    def get_new_paginator(self) -> TotalRowsPaginator:
        """Pages of `PAGE_SIZE` entries until `totalRows`."""
        return TotalRowsPaginator(start_value=0, page_size=PAGE_SIZE)

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        """From the bookmark's hour, oldest first."""
        since = self.get_starting_timestamp(context) or datetime.now(timezone.utc) - timedelta(
            days=30
        )
        since = since.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
        return {
            "from": since.strftime("%Y-%m-%dT%H:00:00Z"),
            "direction": "ASC",
            "limit": PAGE_SIZE,
            "offset": next_page_token or 0,
        }

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """ISO edit time (milliseconds kept), a change digest, key parts never null."""
        millis = row.get("editTime")
        if isinstance(millis, (int, float)):
            row["editTimeMs"] = int(millis)
            row["editTime"] = datetime.fromtimestamp(millis / 1000, timezone.utc).isoformat(
                timespec="milliseconds"
            )
        row["changeHash"] = change_hash(row)
        for key in ("entityId", "actionType"):
            row[key] = row.get(key) or ""
        return row
