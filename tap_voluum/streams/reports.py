"""`GET /report` streams: built-in daily/hourly reports and the user's custom reports."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tap_voluum.errors import VoluumConfigError
from tap_voluum.streams.windows import Window, WindowedStream, aware

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from singer_sdk import Tap

MAX_GROUP_LEVELS = 3  # Voluum groups at most three levels deep
CUSTOM_SLOTS = 20
BUCKET_KEY = "bucketStart"

STRING = {"type": ["string", "null"]}
INTEGER = {"type": ["integer", "null"]}
NUMBER = {"type": ["number", "null"]}


@dataclass(frozen=True)
class Dimension:
    """A Voluum `groupBy` value and the row fields it brings."""

    group_by: str
    key: str
    fields: tuple[str, ...]
    aliases: tuple[str, ...] = ()


def _entity(group_by: str, prefix: str, *extra: str, aliases: tuple[str, ...] = ()) -> Dimension:
    fields = (f"{prefix}Id", f"{prefix}Name", *extra)
    return Dimension(group_by, f"{prefix}Id", fields, (f"{prefix}Id", *aliases))


_WORKSPACE = ("WorkspaceId", "WorkspaceName")
DIMENSIONS: tuple[Dimension, ...] = (
    _entity(
        "campaign",
        "campaign",
        "campaignCountry",
        "campaignWorkspaceId",
        "campaignWorkspaceName",
        "trafficSourceName",
        aliases=("campaign_id",),
    ),
    _entity("offer", "offer", "offerCountry", "offerWorkspaceId", "offerWorkspaceName"),
    _entity("lander", "lander", "landerCountry", "landerWorkspaceId", "landerWorkspaceName"),
    _entity("flow", "flow", "flowWorkspaceId", "flowWorkspaceName"),
    _entity("traffic-source", "trafficSource", aliases=("traffic_source_id",)),
    _entity("affiliate-network", "affiliateNetwork", aliases=("affiliate_network_id",)),
    Dimension(
        "country", "countryCode", ("countryCode", "countryName"), ("country-code", "countryCode")
    ),
    Dimension("os", "os", ("os",)),
    Dimension("browser", "browser", ("browser",)),
    *(
        Dimension(
            f"custom-variable-{n}",
            f"customVariable{n}",
            (f"customVariable{n}",),
            (f"customVariable{n}",),
        )
        for n in range(1, 11)
    ),
)
DIMENSION_BY_NAME: dict[str, Dimension] = {
    name: dim for dim in DIMENSIONS for name in (dim.group_by, *dim.aliases)
}
GRANULARITIES = ("day", "hour")

INTEGER_METRICS = (
    "visits",
    "uniqueVisits",
    "clicks",
    "conversions",
    "errors",
    "impressions",
    "bids",
    "suspiciousVisits",
    "suspiciousClicks",
    *(f"customConversions{n}" for n in range(1, CUSTOM_SLOTS + 1)),
)
NUMBER_METRICS = (
    "revenue",
    "cost",
    "profit",
    "roi",
    "cpv",
    "ctr",
    "cr",
    "cv",
    "epv",
    "epc",
    "ap",
    "ictr",
    "advertiserCost",
    "ecpa",
    "ecpc",
    "ecpm",
    "rpm",
    "winRate",
    *(f"customRevenue{n}" for n in range(1, CUSTOM_SLOTS + 1)),
)
METRICS = INTEGER_METRICS + NUMBER_METRICS
_TEXT_COLUMN = re.compile(r"(Id|Name|Url|Notes|Country|Code|Type|Status|Tags)$")


_VOLUUM_TYPES = {"integer": INTEGER, "yesno": {"type": ["boolean", "null"]}, "string": STRING}
_ENTITY_ATTRIBUTES = frozenset(
    {
        "payout",
        "numberOfOffers",
        "bid",
        "cpa",
        "cpc",
        "cpm",
        "dailyBudget",
        "totalBudget",
        "totalSpend",
        "deleted",
    }
)


def voluum_type(kind: str) -> dict:
    """JSON schema for a `/column/info` type (`integer`, `monetary-decimal-4`, `yesno`, ...)."""
    if kind.startswith("string"):
        return STRING
    return _VOLUUM_TYPES.get(kind, NUMBER)


def account_columns(mappings: Mapping[str, str]) -> tuple[str, ...]:
    """Numeric columns the account defined itself (custom formulas such as `CostPerFTD`)."""
    known = set(METRICS) | {f for d in DIMENSIONS for f in d.fields} | _ENTITY_ATTRIBUTES
    entity = re.compile(r"^(campaign|offer|lander|flow|trafficSource|affiliateNetwork)[A-Z]")
    return tuple(
        key
        for key, kind in mappings.items()
        if key not in known
        and not entity.match(key)
        and voluum_type(kind) is not STRING
        and kind != "yesno"
    )


def column_type(column: str, mappings: Mapping[str, str] | None = None) -> dict:
    """JSON schema of a report column: `/column/info`'s type, else by name."""
    if mappings and column in mappings:
        return voluum_type(mappings[column])
    if column in INTEGER_METRICS:
        return INTEGER
    if column in NUMBER_METRICS:
        return NUMBER
    if _TEXT_COLUMN.search(column) or column in ("os", "browser"):
        return STRING
    return NUMBER  # account-defined formula columns (e.g. CostPerFTD) are numbers


@dataclass(frozen=True)
class ReportDefinition:
    """What one report stream groups by and returns."""

    name: str
    dimensions: tuple[Dimension, ...]
    granularity: str = "day"
    columns: tuple[str, ...] = METRICS

    @property
    def time_in_group_by(self) -> bool:
        """Whether the time level fits under Voluum's three grouping levels."""
        return len(self.dimensions) < MAX_GROUP_LEVELS

    @property
    def group_by(self) -> list[str]:
        """`groupBy` values, the time level last."""
        levels = [d.group_by for d in self.dimensions]
        return [*levels, self.granularity] if self.time_in_group_by else levels

    @property
    def key_fields(self) -> tuple[str, ...]:
        """Row fields that identify a group, besides the bucket."""
        return tuple(d.key for d in self.dimensions)

    @property
    def dimension_fields(self) -> tuple[str, ...]:
        """Every field the grouped dimensions bring, once each."""
        return tuple(dict.fromkeys(f for d in self.dimensions for f in d.fields))


BUILT_IN_REPORTS: tuple[ReportDefinition, ...] = (
    ReportDefinition("campaign_report", (DIMENSION_BY_NAME["campaign"],)),
    ReportDefinition("offer_report", (DIMENSION_BY_NAME["offer"],)),
    ReportDefinition("lander_report", (DIMENSION_BY_NAME["lander"],)),
    ReportDefinition("flow_report", (DIMENSION_BY_NAME["flow"],)),
    ReportDefinition("traffic_source_report", (DIMENSION_BY_NAME["traffic-source"],)),
    ReportDefinition("affiliate_network_report", (DIMENSION_BY_NAME["affiliate-network"],)),
    ReportDefinition("campaign_hourly_report", (DIMENSION_BY_NAME["campaign"],), "hour"),
)
_STREAM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


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
        self, tap: Tap, definition: ReportDefinition, column_info: Mapping[str, str] | None = None
    ) -> None:
        self.definition = definition
        schema = self.report_schema(definition, column_info or {})
        super().__init__(tap, name=definition.name, schema=schema)
        self.primary_keys = (BUCKET_KEY, *definition.key_fields)

    @staticmethod
    def report_schema(definition: ReportDefinition, column_info: Mapping[str, str]) -> dict:
        """Bucket, day/hour, dimension fields, the chosen columns, time zone and currency.

        `column_info` (key -> Voluum type, from `/column/info`) types the columns and adds
        the account's own numeric columns to reports that keep every metric.
        """
        properties: dict[str, dict] = {
            BUCKET_KEY: {"type": ["string"], "format": "date-time"},
            "day": {"type": ["string", "null"], "format": "date"},
        }
        if definition.granularity == "hour":
            properties["hour"] = INTEGER
        for field in definition.dimension_fields:
            properties[field] = {"type": ["string"]} if field in definition.key_fields else STRING
        columns = definition.columns
        if columns == METRICS:
            columns += account_columns(column_info)
        for column in columns:
            properties.setdefault(column, column_type(column, column_info))
        properties["timeZone"] = STRING
        properties["currency"] = STRING
        return {"type": "object", "properties": properties}

    @property
    def window_days(self) -> int:
        """Hourly reports and reports with no room for the day level read one day a time."""
        one_day = self.definition.granularity == "hour" or not self.definition.time_in_group_by
        return 1 if one_day else super().window_days

    LOCAL_FIELDS = frozenset({BUCKET_KEY, "timeZone", "currency"})
    completer_fields = ("day", "hour")

    @property
    def non_null_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        """The dimension ids of the primary key."""
        return self.definition.key_fields

    def requested_columns(self) -> list[str]:
        """Every selected field but `hour`, which is a grouping, not a column."""
        return [field for field in self.api_fields if field != "hour"]

    def window_params(self, window: Window) -> dict[str, Any]:
        """Grouping, a stable sort, and the conversion time mode."""
        params = super().window_params(window)
        params["groupBy"] = self.definition.group_by
        params["sort"] = self.definition.key_fields[0]
        if self.config.get("conversion_time_mode"):
            params["conversionTimeMode"] = self.config["conversion_time_mode"]
        return params

    def completer(self, window: Window) -> Callable[[dict], None]:
        """Stamp each record with the start of its time bucket and its local day."""
        return _BucketClock(self, window).stamp


class _BucketClock:
    """Turns a row's `day`/`hour` (or its window) into the ISO start of its time bucket."""

    def __init__(self, stream: ReportStream, window: Window) -> None:
        self.tz = stream.tz
        self.hourly = stream.definition.granularity == "hour"
        self.window_day = window.start.date()
        self._cache: dict[tuple[date, int], str] = {}

    def stamp(self, record: dict) -> None:
        """Set `bucketStart` and `day` from the record's Voluum `day`/`hour`."""
        value = record.get("day")
        day = (
            date.fromisoformat(value[:10])
            if isinstance(value, str) and len(value) >= 10
            else self.window_day
        )
        key = (day, _hour(record.get("hour")) if self.hourly else 0)
        start = self._cache.get(key)
        if start is None:
            local = datetime.combine(day, datetime.min.time()) + timedelta(hours=key[1])
            start = aware(local, self.tz).isoformat()
            self._cache[key] = start
        record[BUCKET_KEY] = start
        record["day"] = day.isoformat()


def _hour(value: Any) -> int:
    """Voluum's `hour`: an integer, "07", "07:00" or a date-time text."""
    if isinstance(value, int):
        return value
    text = str(value or "0").strip()
    if len(text) >= 13 and text[4] == "-":
        return int(text[11:13])
    return int(text.split(":")[0] or 0)
