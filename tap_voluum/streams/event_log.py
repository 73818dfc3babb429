"""`GET /event-log`: who created, changed, archived or restored which entity, and when."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
from singer_sdk.pagination import BaseAPIPaginator
from typing_extensions import override

from tap_voluum.client import decoded, extract_list
from tap_voluum.errors import StreamFailure, VoluumAPIError
from tap_voluum.streams.base import VoluumStream
from tap_voluum.streams.fields import INTEGER, KEY_STRING, KEY_TIMESTAMP, STRING

if TYPE_CHECKING:
    from collections.abc import Iterable

    import requests
    from singer_sdk.helpers.types import Context

PAGE_SIZE = 1000
FIRST_SYNC_DAYS = 30  # without start_date's help: how far back a first sync reads
KEY = ("editTime", "entityId", "actionType", "changeHash")


class RowsPaginator(BaseAPIPaginator[int]):
    """Offset paging by the entries actually received, until `totalRows` or an empty page.

    Voluum may serve fewer entries than `limit` asks, silently, and may not echo `limit`.
    """

    def __init__(self, records_key: str) -> None:
        super().__init__(0)
        self.records_key = records_key

    def _received(self, response: requests.Response) -> tuple[int, int | None]:
        payload = decoded(response)
        rows = len(extract_list(payload, self.records_key))
        total = payload.get("totalRows") if isinstance(payload, dict) else None
        return rows, total if isinstance(total, int) else None

    def get_next(self, response: requests.Response) -> int | None:
        """The offset after the entries this page brought."""
        return self.current_value + self._received(response)[0]

    def has_more(self, response: requests.Response) -> bool:
        """More while a page brings entries and `totalRows` (if given) is not reached."""
        rows, total = self._received(response)
        return rows > 0 and (total is None or self.current_value + rows < total)


def change_hash(entry: dict) -> str:
    """A short, stable digest of what an entry changed (with the rest of its key, unique)."""
    return hashlib.sha256(
        msgspec.json.encode(entry.get("changes") or [], order="sorted")
    ).hexdigest()[:16]


def edit_millis(value: Any) -> int | None:
    """`editTime` as epoch milliseconds: Voluum sends a number; ISO text is read too."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, str) and value:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return int(moment.timestamp() * 1000)
    return None


def normalize_entry(row: dict) -> dict:
    """ISO edit time (milliseconds kept in `editTimeMs`), a change digest, key never null."""
    millis = edit_millis(row.get("editTime"))
    row["editTimeMs"] = millis
    if millis is not None:
        row["editTime"] = datetime.fromtimestamp(millis / 1000, timezone.utc).isoformat(
            timespec="milliseconds"
        )
    row["changeHash"] = change_hash(row)
    for key in ("entityId", "actionType"):
        row[key] = row.get(key) or ""
    return row


class EventLogStream(VoluumStream):
    """Account audit trail, incremental on `editTime`.

    Voluum gives entries no documented id (some readings add one, kept in `id`): the key is
    the edit time (milliseconds), the entity, the action and a digest of the changes, so
    two edits in one second stay two rows. `changes` is an array of field changes or, in
    another reading, an object; both are kept as Voluum sent them. Entries are read from the
    bookmark's hour, then sorted oldest first here (Voluum may ignore `direction`).
    """

    name = "event_log"
    path = "/event-log"
    records_key = "eventLogEntries"
    primary_keys: ClassVar[tuple[str, ...]] = KEY
    replication_key = "editTime"
    is_sorted = True
    check_sorted = False  # the bookmark's hour is read again, older entries included
    absent_means = "this account has no event log"
    schema: ClassVar[dict] = {
        "type": "object",
        "properties": {
            "editTime": KEY_TIMESTAMP,
            "editTimeMs": INTEGER,
            "entityId": KEY_STRING,
            "actionType": KEY_STRING,
            "changeHash": KEY_STRING,
            "id": STRING,
            "category": STRING,
            "entityName": STRING,
            "userId": STRING,
            "userName": STRING,
            "clientId": STRING,
            "changes": {"type": ["array", "object", "null"]},
        },
    }

    @override
    def get_new_paginator(self) -> RowsPaginator:
        """Pages of up to `PAGE_SIZE` entries, by the entries received."""
        return RowsPaginator(self.records_key)

    def since(self, context: Context | None) -> datetime:
        """The bookmark (or `start_date`), as an aware UTC time; `--test`: an hour ago."""
        if self.connection_test:  # read a little: the last hour or two
            return datetime.now(timezone.utc) - timedelta(hours=1)
        start = self.get_starting_timestamp(context)
        if start is None:
            start = datetime.now(timezone.utc) - timedelta(days=FIRST_SYNC_DAYS)
        return start.astimezone(timezone.utc)

    @override
    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        """From the bookmark's hour, oldest first, in the time format this Voluum reads."""
        since = self.since(context).replace(minute=0, second=0, microsecond=0)
        params: dict[str, Any] = {"from": self._bound(since)}
        if self.run.readings.event_log_sends_to:
            now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
            params["to"] = self._bound(now + timedelta(hours=1))
        params.update({"direction": "ASC", "limit": PAGE_SIZE, "offset": next_page_token or 0})
        return params

    def _bound(self, moment: datetime) -> Any:
        """A `from`/`to` value in the time format this Voluum reads."""
        if self.run.readings.event_log_time == "epoch":
            return int(moment.timestamp() * 1000)
        return moment.strftime("%Y-%m-%dT%H:00:00Z")

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        """Every entry from the bookmark's hour, once each, oldest first.

        Entries of that hour older than the bookmark are written again (a target upserts
        them by key): one that Voluum logged late is not lost.
        """
        if self.failed_for(context):
            return
        with self.isolated(context):
            entries: dict[tuple, dict] = {}
            for row in self._request_entries(context):
                entry = self.shape.fit(normalize_entry(row))
                entries.setdefault(tuple(entry.get(k) for k in KEY), entry)
            yield from sorted(
                entries.values(),
                key=lambda e: (
                    e["editTimeMs"] or 0, e["entityId"], e["actionType"], e["changeHash"]
                ),
            )  # fmt: skip

    def _request_entries(self, context: Context | None) -> Iterable[dict]:
        """The SDK's paged read, read again after a reading changed.

        What a 400 says decides what changes: a refused time value, the other time format;
        `to` missing, `to` sent from now on. A refused range changes no reading: `from`
        after Voluum's now (its clock behind this machine's) means nothing new to read.
        """
        readings = self.run.readings
        switched = False
        while True:
            try:
                yield from self.request_records(context)
            except VoluumAPIError as exc:
                if exc.refuses_range:
                    self._range_refused(context, exc)
                    return
                if exc.missing_parameter == "to" and not readings.event_log_sends_to:
                    readings.send_event_log_to()
                    self.logger.info(
                        "%s: Voluum wants `to` (%s); sending it from now on", self.name, exc
                    )
                    continue
                if switched or not exc.is_refused_parameter:
                    raise
                switched = True
                fmt = readings.switch_event_log_time()
                self.logger.info(
                    "%s: Voluum refused the time format of `from` (%s); "
                    "sending %s times from now on",
                    self.name,
                    exc,
                    fmt,
                )
                continue
            return

    def _range_refused(self, context: Context | None, exc: VoluumAPIError) -> None:
        """`from` later than Voluum's now: nothing to read; any other range refused: fail."""
        if "before" not in exc.detail and "after" not in exc.detail:
            raise StreamFailure(f"{exc} (the event log is read from its bookmark on)") from exc
        self.logger.warning(
            "%s: Voluum refused the range from %s (%s): its clock seems behind this "
            "machine's; nothing read, the bookmark stays",
            self.name,
            self.since(context).strftime("%Y-%m-%d %H:00 UTC"),
            exc,
        )
