"""`GET /report/conversions`: the conversion log, in windows of postback time."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tap_voluum.client import decoded
from tap_voluum.streams.windows import Window, WindowedStream, aware

if TYPE_CHECKING:
    from collections.abc import Iterable

    import requests

VOLUUM_TIME = "%Y-%m-%d %I:%M:%S %p"
STRING = {"type": ["string", "null"]}
TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}

_TEXT_FIELDS = (
    "clickId",
    "transactionId",
    "externalId",
    "conversionType",
    "campaignId",
    "campaignName",
    "offerId",
    "offerName",
    "landerId",
    "landerName",
    "trafficSourceId",
    "trafficSourceName",
    "affiliateNetworkId",
    "affiliateNetworkName",
    "flowId",
    "flowName",
    "creativeId",
    *(f"customVariable{n}" for n in range(1, 11)),
    "countryCode",
    "countryName",
    "region",
    "city",
    "browser",
    "browserVersion",
    "os",
    "osVersion",
    "device",
    "deviceName",
    "brand",
    "model",
    "connectionType",
    "connectionTypeName",
    "isp",
    "mobileCarrier",
    "ip",
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
            "postbackTimestamp": {"type": ["string"], "format": "date-time"},
            "visitTimestamp": TIMESTAMP,
            **{field: STRING for field in _TEXT_FIELDS},
            "clickId": {"type": ["string"]},
            "conversionType": {"type": ["string"]},
            "conversionTypeId": {"type": ["integer", "null"]},
            "conversions": {"type": ["integer", "null"]},
            "revenue": {"type": ["number", "null"]},
            "cost": {"type": ["number", "null"]},
            "payout": {"type": ["number", "null"]},
            "timeZone": STRING,
            "currency": STRING,
        },
    }

    def window_params(self, window: Window) -> dict[str, Any]:
        """Window on postback time, oldest first, archived entities included."""
        params = super().window_params(window)
        params["sort"] = "postbackTimestamp"
        params["direction"] = "ASC"
        params["include"] = "ALL"
        params["columns"] = [
            k for k in self.schema["properties"] if k not in ("timeZone", "currency")
        ]
        if self.config.get("currency"):
            params["currency"] = self.config["currency"]
        if self.config.get("workspace_ids"):
            params["workspaces"] = list(self.config["workspace_ids"])
        return params

    def rows_of(self, window: Window, response: requests.Response) -> Iterable[dict]:
        """Known fields, timestamps with their offset, key parts never null."""
        payload = decoded(response)
        rows = payload.get("rows") if isinstance(payload, dict) else None
        if not rows:
            return
        tz = self.tz
        fields = tuple(self.schema["properties"])
        tz_name = str(self.config["timezone"])
        currency = self.config.get("currency")
        for row in rows:
            record = {k: row[k] for k in fields if k in row}
            record["postbackTimestamp"] = voluum_timestamp(row.get("postbackTimestamp"), tz)
            record["visitTimestamp"] = voluum_timestamp(row.get("visitTimestamp"), tz)
            for key in ("clickId", "conversionType"):
                if record.get(key) is None:
                    record[key] = ""
            record["timeZone"] = tz_name
            record["currency"] = currency
            yield record
