"""`GET /column/info`: the account's column dictionary (`customConversions1` = "LEAD")."""

from __future__ import annotations

from typing import ClassVar

from tap_voluum.streams.base import VoluumStream
from tap_voluum.streams.fields import BOOLEAN, KEY_STRING, STRING


class ReportColumnsStream(VoluumStream):
    """One record per report column Voluum knows for this account: key, label, type."""

    name = "report_columns"
    path = "/column/info"
    records_key = "columnMappings"
    primary_keys: ClassVar[tuple[str, ...]] = ("key",)
    replication_key = None
    absent_means = "this account's column dictionary is not readable"
    schema: ClassVar[dict] = {
        "type": "object",
        "properties": {
            "key": KEY_STRING,
            "label": STRING,
            "type": STRING,
            "canGroupBy": BOOLEAN,
            "canBeRestricted": BOOLEAN,
        },
    }
