"""`GET /report` streams: built-in daily/hourly reports and the user's custom reports."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tap_voluum.errors import StreamFailure, VoluumConfigError
from tap_voluum.remedies import Remedies
from tap_voluum.stamps import RowStamp
from tap_voluum.streams.dimensions import (
    CUSTOM_COLUMN,
    DIMENSION_BY_NAME,
    DIMENSIONS,
    GRANULARITIES,
    METRICS,
    Dimension,
    account_columns,
    column_type,
)
from tap_voluum.streams.fields import (
    INTEGER,
    KEY_STRING,
    KEY_TIMESTAMP,
    STRING,
)
from tap_voluum.streams.reconcile import Reconciler
from tap_voluum.streams.windowed import WindowedStream
from tap_voluum.streams.windows import Window, aware

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from zoneinfo import ZoneInfo

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

MAX_GROUP_LEVELS = 3  # Voluum groups at most three levels deep
BUCKET_KEY = "bucketStart"


@dataclass(frozen=True)
class ReportDefinition:
    """What one report stream groups by and returns."""

    name: str
    dimensions: tuple[Dimension, ...]
    granularity: str = "day"
    columns: tuple[str, ...] = METRICS

    @property
    def time_levels(self) -> tuple[str, ...]:
        """The time levels grouped by, within Voluum's three levels.

        Daily: `day` when there is room. Hourly: `day` and `hour` when there is room for
        both (each row one date-hour, whatever the window's span), else `hour` alone (an
        hour of the window's single day).
        """
        room = MAX_GROUP_LEVELS - len(self.dimensions)
        if self.granularity == "hour":
            return ("day", "hour") if room >= 2 else ("hour",)
        return ("day",) if room >= 1 else ()

    @property
    def spans_days(self) -> bool:
        """Whether a window may span many days: each row then names its day."""
        return "day" in self.time_levels

    @property
    def group_by(self) -> list[str]:
        """`groupBy` values, the time levels last."""
        return [*(d.group_by for d in self.dimensions), *self.time_levels]

    @property
    def key_fields(self) -> tuple[str, ...]:
        """Row fields that identify a group, besides the bucket."""
        return tuple(d.key for d in self.dimensions)

    @property
    def dimension_fields(self) -> tuple[str, ...]:
        """Every field the grouped dimensions bring, once each."""
        return tuple(dict.fromkeys(f for d in self.dimensions for f in d.fields))

    def stamp(self) -> dict[str, str]:
        """What a custom report's rows are made of: grouping, time bucket, columns."""
        columns = "all" if self.columns == METRICS else ",".join(sorted(self.columns))
        grouping = ",".join(d.group_by for d in self.dimensions)
        return {"group_by": grouping, "granularity": self.granularity, "columns": columns}


BUILT_IN_REPORTS: tuple[ReportDefinition, ...] = (
    ReportDefinition("campaign_report", (DIMENSION_BY_NAME["campaign"],)),
    ReportDefinition("offer_report", (DIMENSION_BY_NAME["offer"],)),
    ReportDefinition("lander_report", (DIMENSION_BY_NAME["lander"],)),
    ReportDefinition("flow_report", (DIMENSION_BY_NAME["flow"],)),
    ReportDefinition("traffic_source_report", (DIMENSION_BY_NAME["traffic-source"],)),
    ReportDefinition("affiliate_network_report", (DIMENSION_BY_NAME["affiliate-network"],)),
    ReportDefinition("campaign_hourly_report", (DIMENSION_BY_NAME["campaign"],), "hour"),
)
STREAM_NAME_PATTERN = "^[a-z][a-z0-9_]*$"
_STREAM_NAME = re.compile(STREAM_NAME_PATTERN)


def custom_report_definitions(
    entries: Iterable[Mapping[str, Any]], taken: set[str]
) -> list[ReportDefinition]:
    """Check the `custom_reports` setting and turn each entry into a definition."""
    definitions: list[ReportDefinition] = []
    names = set(taken)
    for entry in entries:
        name = str(entry.get("name") or "")
        where = f"custom_reports[{name or len(definitions)}]"
        if not _STREAM_NAME.match(name):
            raise VoluumConfigError(f"{where}: name must be snake_case letters, digits and _")
        if name in names:
            raise VoluumConfigError(f"{where}: the stream name '{name}' is used twice")
        names.add(name)
        dimensions = _dimensions(where, entry.get("group_by") or [])
        granularity = str(entry.get("granularity") or "day")
        if granularity not in GRANULARITIES:
            raise VoluumConfigError(
                f"{where}: granularity must be 'day' or 'hour', not '{granularity}'"
            )
        if granularity == "hour" and len(dimensions) >= MAX_GROUP_LEVELS:
            msg = f"{where}: an hourly report takes at most 2 dimensions (Voluum groups 3 levels)"
            raise VoluumConfigError(msg)
        columns = tuple(str(c) for c in entry.get("columns") or ()) or METRICS
        definitions.append(ReportDefinition(name, dimensions, granularity, columns))
    return definitions


def _dimensions(where: str, group_by: Iterable[str]) -> tuple[Dimension, ...]:
    dimensions: list[Dimension] = []
    for name in group_by:
        if name in GRANULARITIES:
            raise VoluumConfigError(f"{where}: put '{name}' in granularity, not in group_by")
        dimension = DIMENSION_BY_NAME.get(name)
        if dimension is None:
            known = ", ".join(d.group_by for d in DIMENSIONS)
            raise VoluumConfigError(f"{where}: unknown dimension '{name}' (known: {known})")
        if dimension in dimensions:
            raise VoluumConfigError(f"{where}: dimension '{name}' is listed twice")
        dimensions.append(dimension)
    if not 1 <= len(dimensions) <= MAX_GROUP_LEVELS:
        raise VoluumConfigError(f"{where}: group_by takes 1 to 3 dimensions, not {len(dimensions)}")
    return tuple(dimensions)


class ReportStream(WindowedStream):
    """One `/report` grouping, read per window of local days, keyed by bucket + dimensions."""

    path = "/report"
    replication_key = BUCKET_KEY

    def __init__(
        self,
        tap: Tap,
        definition: ReportDefinition,
        column_info: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.definition = definition
        schema = self.report_schema(definition, column_info or {}, labels or {})
        super().__init__(tap, name=definition.name, schema=schema)
        self.primary_keys = (BUCKET_KEY, *definition.key_fields)

    @staticmethod
    def report_schema(
        definition: ReportDefinition,
        column_info: Mapping[str, str],
        labels: Mapping[str, str] | None = None,
    ) -> dict:
        """Bucket, day/hour, dimension fields, the chosen columns, time zone and currency.

        `column_info` (key -> Voluum type, from `/column/info`) types the columns and adds
        the account's own numeric columns to reports that keep every metric; `labels`
        (key -> label) name custom conversions in their description ("LEAD").
        """
        properties: dict[str, dict] = {
            BUCKET_KEY: KEY_TIMESTAMP,
            "day": {"type": ["string", "null"], "format": "date"},
        }
        if definition.granularity == "hour":
            properties["hour"] = INTEGER
        for field in definition.dimension_fields:
            properties[field] = KEY_STRING if field in definition.key_fields else STRING
        columns = definition.columns
        if columns == METRICS:
            columns += account_columns(column_info)
        for column in columns:
            properties.setdefault(column, column_type(column, column_info))
            label = (labels or {}).get(column)
            if label and CUSTOM_COLUMN.match(column):
                description = f"{label}: {column} in this Voluum account"
                properties[column] = {**properties[column], "description": description}
        properties["timeZone"] = STRING
        properties["currency"] = STRING
        return {"type": "object", "properties": properties}

    ROW_SETTINGS = (*WindowedStream.ROW_SETTINGS, "conversion_time_mode")

    def row_stamp(self, context: Context | None) -> RowStamp:
        """The stream's settings stamp; a custom report's also names what it groups by."""
        stamp = super().row_stamp(context)
        if self.definition in BUILT_IN_REPORTS:
            return stamp
        return RowStamp({**stamp.settings, **self.definition.stamp()})

    @property
    def window_days(self) -> int | None:
        """Reports with no room for the day level read one day a time."""
        return super().window_days if self.definition.spans_days else 1

    local_fields = frozenset({BUCKET_KEY, "timeZone", "currency", "account"})
    completer_fields = ("day", "hour")
    columns_listed_only = True
    restates = True
    distinct_rows = True

    @property
    def non_null_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        """The dimension ids of the primary key."""
        return self.definition.key_fields

    def requested_columns(self) -> list[str]:
        """Every selected field but `hour`, which is a grouping, not a column."""
        return [field for field in self.api_fields if field != "hour"]

    def sort_column(self) -> str | None:
        """The first dimension's id: a total, stable order across pages."""
        return self.definition.key_fields[0]

    def group_by(self) -> list[str]:
        """`groupBy` values in the spellings this run uses, the time level last."""
        readings = self.run.readings
        levels = [readings.spelling(d.group_by, d.candidates) for d in self.definition.dimensions]
        return [*levels, *self.definition.time_levels]

    def window_params(self, context: Context | None, window: Window) -> dict[str, Any]:
        """Grouping and the conversion time mode."""
        params = super().window_params(context, window)
        params["groupBy"] = self.group_by()
        if self.config.get("conversion_time_mode"):
            params["conversionTimeMode"] = self.config["conversion_time_mode"]
        return params

    @cached_property
    def remedies(self) -> Remedies:
        """Sort, columns and the dimensions' `groupBy` spellings; dimensions never dropped."""
        protected = (*self.definition.dimension_fields, "day", "hour")
        return Remedies.of(self, protected=protected, dimensions=self.definition.dimensions)

    def bookmark_after(self, context: Context | None, window: Window) -> str:
        """The start of the window's last bucket: its last hour, or its last day."""
        last = window.last_hour
        if self.definition.granularity == "day":
            last = datetime.combine(last.date(), datetime.min.time())
        return aware(last, self.tz(context)).isoformat()

    def completer(self, context: Context | None, window: Window) -> Callable[[dict], None]:
        """Stamp each record with the start of its time bucket and its local day."""
        return _BucketClock(self, window, self.tz(context)).stamp

    def make_reconciler(self) -> Reconciler | None:
        """Each window's selected summable metrics against Voluum's totals (`reconcile`)."""
        mode = str(self.config.get("reconcile") or "warn")
        reconciler = Reconciler(self.name, self.api_fields, mode, self.logger)
        return reconciler if reconciler.enabled else None


class _BucketClock:
    """Turns a row's `day`/`hour` (or its window) into the ISO start of its time bucket."""

    def __init__(self, stream: ReportStream, window: Window, tz: ZoneInfo) -> None:
        self.tz = tz
        self.hourly = stream.definition.granularity == "hour"
        self.window_day = window.start.date() if window.days == 1 else None
        self._cache: dict[tuple[date, int], str] = {}

    def stamp(self, record: dict) -> None:
        """Set `bucketStart` and `day` from the record's Voluum `day`/`hour`."""
        value = record.get("day")
        hour_value = record.get("hour")
        if self.hourly and isinstance(hour_value, str) and _is_datetime_text(hour_value):
            value = hour_value  # "2026-03-02T07:00:00": the date-hour itself
        if isinstance(value, str) and len(value) >= 10:
            day = date.fromisoformat(value[:10])
        elif self.window_day is not None:
            day = self.window_day
        else:
            raise StreamFailure("Voluum's rows carry no day, in a window of several days")
        hour = _hour(hour_value) if self.hourly else 0
        if self.hourly:
            record["hour"] = hour
        key = (day, hour)
        start = self._cache.get(key)
        if start is None:
            local = datetime.combine(day, datetime.min.time()) + timedelta(hours=key[1])
            start = aware(local, self.tz).isoformat()
            self._cache[key] = start
        record[BUCKET_KEY] = start
        record["day"] = day.isoformat()


def _is_datetime_text(text: str) -> bool:
    return len(text) >= 13 and text[4] == "-"


def _hour(value: Any) -> int:
    """Voluum's `hour`: an integer, "07", "07:00" or a date-time text."""
    if isinstance(value, int):
        return value
    text = str(value or "0").strip()
    if _is_datetime_text(text):
        return int(text[11:13])
    return int(text.split(":")[0] or 0)
