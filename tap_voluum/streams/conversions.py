"""`GET /report/conversions`: the conversion log, in windows of postback time."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tap_voluum.streams.fields import (
    EVENT_FIELDS,
    INTEGER,
    KEY_STRING,
    KEY_TIMESTAMP,
    NUMBER,
    STRING,
    TIMESTAMP,
)
from tap_voluum.streams.windowed import WindowedStream
from tap_voluum.streams.windows import Window, aware

if TYPE_CHECKING:
    from collections.abc import Callable

    from singer_sdk.helpers.types import Context

VOLUUM_TIME = "%Y-%m-%d %I:%M:%S %p"
_TEXT_FIELDS = (
    "clickId",
    "transactionId",
    "conversionType",
    "campaignId",
    "creativeId",
    *EVENT_FIELDS,
)
PRIMARY_KEY = ("clickId", "postbackTimestamp", "conversionType")


def voluum_timestamp(value: Any, tz: ZoneInfo) -> str | None:
    """`2021-09-30 11:23:45 PM` (wall clock in the report zone) as ISO-8601 with offset.

    ISO texts and epoch milliseconds are accepted too. In the hour a clock repeats when
    DST ends, Voluum's text is ambiguous: the first occurrence is taken.
    """
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000, timezone.utc).astimezone(tz).isoformat()
    text = str(value).strip()
    try:
        local = datetime.strptime(text, VOLUUM_TIME)
    except ValueError:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (parsed.astimezone(tz) if parsed.tzinfo else aware(parsed, tz)).isoformat()
    return aware(local, tz).isoformat()


class ConversionsStream(WindowedStream):
    """Every conversion, incremental on its postback time.

    Voluum gives conversions no id. The key is the click, the postback time and the
    conversion type: one click converts at most once per type at one time, and the three
    never change when a conversion is read again. `transactionId` is left out: it is not
    unique (accounts put labels such as "deposit" in it) and is often empty.
    """

    name = "conversions"
    path = "/report/conversions"
    primary_keys = PRIMARY_KEY
    replication_key = "postbackTimestamp"
    schema = {  # noqa: RUF012
        "type": "object",
        "properties": {
            "postbackTimestamp": KEY_TIMESTAMP,
            "visitTimestamp": TIMESTAMP,
            **{field: STRING for field in _TEXT_FIELDS},
            "clickId": KEY_STRING,
            "conversionType": KEY_STRING,
            "conversionTypeId": INTEGER,
            "conversions": INTEGER,
            "revenue": NUMBER,
            "cost": NUMBER,
            "payout": NUMBER,
            "timeZone": STRING,
            "currency": STRING,
        },
    }

    non_null_keys = ("clickId", "conversionType")
    completer_fields = ("postbackTimestamp", "visitTimestamp")

    def sort_column(self) -> str | None:
        """Oldest postback first."""
        return "postbackTimestamp"

    def completer(self, context: Context | None, window: Window) -> Callable[[dict], None]:
        """Timestamps as ISO-8601 with the zone's offset."""
        tz = self.tz(context)

        def complete(record: dict) -> None:
            record["postbackTimestamp"] = voluum_timestamp(record.get("postbackTimestamp"), tz)
            record["visitTimestamp"] = voluum_timestamp(record.get("visitTimestamp"), tz)

        return complete
