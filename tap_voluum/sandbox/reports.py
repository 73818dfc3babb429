"""Report engine of the sandbox: query parsing, aggregation, sorting, paging and row rendering.

``/report`` results are cached per normalised query (everything except ``limit``/``offset`` and the
cosmetic ``columns``), so paging through a large result only slices and renders one page.
"""

from __future__ import annotations

import itertools
import operator
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from .data import (
    BROWSERS,
    CONVERSION_TYPES,
    COUNTRIES,
    CURRENCY_RATES,
    CUSTOM_VARIABLE_DIMS,
    CV2_VALUES,
    CV3_VALUES,
    DIMENSIONS,
    ENTITY_DIMS,
    EPOCH_ORDINAL,
    OPERATING_SYSTEMS,
    Dataset,
    TzContext,
    ampm,
    canonical_dimension,
    tz_context,
)

DEFAULT_LIMIT = 100
MAX_LIMIT = 100_000
MAX_GROUP_LEVELS = 3


class ApiError(Exception):
    """An error answered with Voluum's ``{"error": {...}}`` envelope."""

    def __init__(
        self, status: int, code: str, description: str = "", messages: Sequence[str] = ()
    ) -> None:
        """Store HTTP status, error code, description and messages."""
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.messages = list(messages)


# --------------------------------------------------------------------------- params


def first(query: dict[str, list[str]], name: str) -> str | None:
    """First value of a query parameter, or ``None``."""
    values = query.get(name)
    return values[0] if values else None


def many(query: dict[str, list[str]], *names: str) -> list[str]:
    """All values of repeatable parameters (comma-joined values are split), in order."""
    out: list[str] = []
    for name in names:
        for value in query.get(name, []):
            out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?(Z)?$"
)


def parse_hour_time(value: str, name: str) -> datetime:
    """Parse a ``from``/``to`` value as a naive wall-clock datetime that must be on a whole hour.

    Accepts ``YYYY-MM-DD``, ``YYYY-MM-DDTHH``, ``YYYY-MM-DDTHH:MM``, ``YYYY-MM-DDTHH:MM:SS``
    and ``...:SS.fffZ`` (the ``Z`` is ignored: the value is read in ``tz``).
    """
    m = _TIME_RE.match(value.strip())
    if not m:
        raise ApiError(
            400, "BAD_REQUEST", f"Invalid time format of parameter '{name}': {value}", [value]
        )
    year, month, day, hour, minute, second, frac, _ = m.groups()
    if (minute and int(minute)) or (second and int(second)) or (frac and int(frac)):
        raise ApiError(
            400,
            "BAD_REQUEST",
            f"Invalid time format of parameter '{name}': {value}. Time must be on a full hour",
            [value],
        )
    try:
        return datetime(int(year), int(month), int(day), int(hour or 0))
    except ValueError as exc:
        raise ApiError(400, "BAD_REQUEST", f"Invalid date in parameter '{name}': {value}") from exc


def parse_window(query: dict[str, list[str]]) -> tuple[TzContext, int, int]:
    """Validate ``from``/``to``/``tz``; return the zone and the UTC bounds ``[start, end)``."""
    raw_from = first(query, "from")
    raw_to = first(query, "to")
    for name, raw in (("from", raw_from), ("to", raw_to)):
        if raw is None or raw == "":
            raise ApiError(400, "PARAMETER_MISSING", f"Missing required parameter: {name}", [name])
    assert raw_from is not None and raw_to is not None
    start = parse_hour_time(raw_from, "from")
    end = parse_hour_time(raw_to, "to")
    tz_name = first(query, "tz") or "Etc/GMT"
    try:
        tzc = tz_context(tz_name)
    except ValueError as exc:
        raise ApiError(400, "BAD_REQUEST", f"Unknown time zone: {tz_name}", [tz_name]) from exc
    start_utc = tzc.to_utc(start)
    end_utc = tzc.to_utc(end)
    if end_utc < start_utc:
        raise ApiError(400, "BAD_REQUEST", "Parameter 'from' must not be after 'to'")
    return tzc, start_utc, end_utc


def parse_paging(query: dict[str, list[str]], default: int, maximum: int) -> tuple[int, int]:
    """Return the effective ``(limit, offset)``; ``limit`` is capped at ``maximum``."""
    try:
        limit = int(first(query, "limit") or default)
        offset = int(first(query, "offset") or 0)
    except ValueError as exc:
        raise ApiError(400, "BAD_REQUEST", "limit and offset must be integers") from exc
    if limit < 1 or offset < 0:
        raise ApiError(400, "BAD_REQUEST", "limit must be >= 1 and offset >= 0")
    return min(limit, maximum), offset


def parse_sort(
    query: dict[str, list[str]], allowed: Callable[[str], bool]
) -> tuple[str | None, bool]:
    """Validate ``sort``/``direction``; return the field (or ``None``) and ``descending``."""
    sort = first(query, "sort")
    direction = (first(query, "direction") or "ASC").upper()
    if direction not in ("ASC", "DESC"):
        raise ApiError(400, "INVALID_QUERY", f"Invalid sort direction: {direction}")
    if sort is None or sort == "":
        return None, direction == "DESC"
    if ":" in sort or not allowed(sort):
        raise ApiError(400, "INVALID_QUERY", f"Invalid sort column: {sort}", [sort])
    return sort, direction == "DESC"


# --------------------------------------------------------------------------- metrics

# Layout of the integer metric vector of a row.
BASE_METRICS = ("visits", "uniqueVisits", "clicks", "errors", "impressions", "cost")
CONV_METRICS = (
    "conversions",
    "revenue",
    *(f"customConversions{n}" for n in range(1, 6)),
    *(f"customRevenue{n}" for n in range(1, 6)),
)
VECTOR = BASE_METRICS + CONV_METRICS
N_BASE = len(BASE_METRICS)
N_CONV = len(CONV_METRICS)
WIDTH = N_BASE + N_CONV

# key -> (label, type)
METRIC_COLUMNS: dict[str, tuple[str, str]] = {
    "visits": ("Visits", "integer"),
    "uniqueVisits": ("Unique visits", "integer"),
    "clicks": ("Clicks", "integer"),
    "conversions": ("Conversions", "integer"),
    "revenue": ("Revenue", "monetary-decimal-4"),
    "cost": ("Cost", "monetary-decimal-4"),
    "profit": ("Profit", "monetary-decimal-4"),
    "roi": ("ROI", "percentage"),
    "cpv": ("CPV", "monetary-decimal-4"),
    "ctr": ("CTR", "percentage"),
    "cr": ("CR", "percentage"),
    "cv": ("CV", "percentage"),
    "epv": ("EPV", "monetary-decimal-4"),
    "epc": ("EPC", "monetary-decimal-4"),
    "ap": ("AP", "monetary-decimal-4"),
    "errors": ("Errors", "integer"),
    "impressions": ("Impressions", "integer"),
    "ictr": ("ICTR", "percentage"),
    "ecpa": ("eCPA", "monetary-decimal-4"),
    "ecpc": ("eCPC", "monetary-decimal-4"),
    "ecpm": ("eCPM", "monetary-decimal-4"),
    "rpm": ("RPM", "monetary-decimal-4"),
    **{f"customConversions{t[0]}": (t[2], "integer") for t in CONVERSION_TYPES},
    **{f"customRevenue{t[0]}": (f"{t[2]} revenue", "monetary-decimal-4") for t in CONVERSION_TYPES},
}


def _div(nums: list[int], dens: list[int], scale: float) -> list[float]:
    """Element-wise ``num / den * scale`` rounded to 5 decimals; 0.0 where ``den`` is 0."""
    return [round(n / d * scale, 5) if d else 0.0 for n, d in zip(nums, dens, strict=True)]


def metric_columns(cols: Sequence[list[int]]) -> list[list[Any]]:
    """Metric output columns (in ``METRIC_COLUMNS`` order) from the 18 integer vector columns.

    Computed column-wise for speed; money comes in cents; derived metrics follow Voluum's
    formulas, rounded to 5 decimals and 0 when the denominator is 0.
    """
    visits, uv, clicks, errors, impr, cost, conv, rev = cols[:8]
    cc = cols[8:13]
    cr = cols[13:18]
    cost_f = [c / 100 for c in cost]
    rev_f = [r / 100 for r in rev]
    out: dict[str, list[Any]] = {
        "visits": visits,
        "uniqueVisits": uv,
        "clicks": clicks,
        "conversions": conv,
        "revenue": rev_f,
        "cost": cost_f,
        "profit": [(r - c) / 100 for r, c in zip(rev, cost, strict=True)],
        "roi": [round((r - c) / c * 100, 5) if c else 0.0 for r, c in zip(rev, cost, strict=True)],
        "cpv": _div(cost, visits, 0.01),
        "ctr": _div(clicks, visits, 100),
        "cr": _div(conv, clicks, 100),
        "cv": _div(conv, visits, 100),
        "epv": _div(rev, visits, 0.01),
        "epc": _div(rev, clicks, 0.01),
        "ap": _div(rev, conv, 0.01),
        "errors": errors,
        "impressions": impr,
        "ictr": _div(visits, impr, 100),
        "ecpa": _div(cost, conv, 0.01),
        "ecpc": _div(cost, clicks, 0.01),
        "ecpm": _div(cost, impr, 10),
        "rpm": _div(rev, impr, 10),
    }
    for n in range(5):
        out[f"customConversions{n + 1}"] = cc[n]
    for n in range(5):
        out[f"customRevenue{n + 1}"] = [v / 100 for v in cr[n]]
    return [out[k] for k in METRIC_COLUMNS]


METRIC_KEYS = tuple(METRIC_COLUMNS)


def metric_dict(m: Sequence[int]) -> dict[str, Any]:
    """Render one integer metric vector (money in cents) as Voluum metric fields."""
    return {k: col[0] for k, col in zip(METRIC_KEYS, metric_columns([[v] for v in m]), strict=True)}


# --------------------------------------------------------------------------- columns

_DIM_FIELDS: dict[str, tuple[tuple[str, str, str, bool], ...]] = {
    # dim -> ((key, label, type, canGroupBy), ...); the first key is the group key.
    "campaign": (
        ("campaignId", "Campaign ID", "string", True),
        ("campaignName", "Campaign", "string", False),
        ("campaignNamePostfix", "Campaign name postfix", "string", False),
        ("campaignCountry", "Campaign country", "string", False),
        ("campaignUrl", "Campaign URL", "string", False),
        ("campaignCurrencyCode", "Campaign currency", "string", False),
        ("campaignWorkspaceId", "Campaign workspace ID", "string", False),
        ("campaignWorkspaceName", "Campaign workspace", "string", False),
        ("campaignTags", "Campaign tags", "string", False),
        ("costModel", "Cost model", "string", False),
        ("revenueModel", "Revenue model", "string", False),
    ),
    "offer": (
        ("offerId", "Offer ID", "string", True),
        ("offerName", "Offer", "string", False),
        ("offerCountry", "Offer country", "string", False),
        ("offerUrl", "Offer URL", "string", False),
        ("offerWorkspaceId", "Offer workspace ID", "string", False),
        ("offerWorkspaceName", "Offer workspace", "string", False),
        ("payout", "Payout", "monetary-decimal-4", False),
    ),
    "lander": (
        ("landerId", "Lander ID", "string", True),
        ("landerName", "Lander", "string", False),
        ("landerCountry", "Lander country", "string", False),
        ("landerUrl", "Lander URL", "string", False),
        ("landerWorkspaceId", "Lander workspace ID", "string", False),
        ("landerWorkspaceName", "Lander workspace", "string", False),
        ("numberOfOffers", "Number of offers", "integer", False),
    ),
    "flow": (
        ("flowId", "Flow ID", "string", True),
        ("flowName", "Flow", "string", False),
        ("flowWorkspaceId", "Flow workspace ID", "string", False),
        ("flowWorkspaceName", "Flow workspace", "string", False),
    ),
    "traffic-source": (
        ("trafficSourceId", "Traffic source ID", "string", True),
        ("trafficSourceName", "Traffic source", "string", False),
    ),
    "affiliate-network": (
        ("affiliateNetworkId", "Affiliate network ID", "string", True),
        ("affiliateNetworkName", "Affiliate network", "string", False),
    ),
    "country": (
        ("countryCode", "Country code", "string", True),
        ("countryName", "Country", "string", False),
    ),
    "os": (("os", "OS", "string", True),),
    "browser": (("browser", "Browser", "string", True),),
    **{
        f"custom-variable-{n}": ((f"customVariable{n}", f"Custom variable {n}", "string", True),)
        for n in range(1, 11)
    },
    "day": (("day", "Day", "string", True),),
    "hour": (("hour", "Hour of day", "integer", True),),
}


def column_mappings() -> list[dict[str, Any]]:
    """Build the ``columnMappings`` list: every dimension field and metric with its type."""
    cols: list[dict[str, Any]] = []
    seen: set[str] = set()
    for dim in DIMENSIONS:
        for key, label, typ, group in _DIM_FIELDS[dim]:
            if key not in seen:
                seen.add(key)
                cols.append(
                    {
                        "key": key,
                        "label": label,
                        "type": typ,
                        "canGroupBy": group,
                        "canBeRestricted": True,
                    }
                )
    cols.append(
        {
            "key": "deleted",
            "label": "Archived",
            "type": "yesno",
            "canGroupBy": False,
            "canBeRestricted": False,
        }
    )
    for key, (label, typ) in METRIC_COLUMNS.items():
        cols.append(
            {"key": key, "label": label, "type": typ, "canGroupBy": False, "canBeRestricted": True}
        )
    return cols


COLUMN_MAPPINGS = column_mappings()

# --------------------------------------------------------------------------- queries

_INCLUDE = {"ACTIVE", "ARCHIVED", "ALL", "TRAFFIC", "ENTITY"}
_RELATIONS: dict[str, Callable[[float, float], bool]] = {
    "EQUAL": lambda a, b: a == b,
    "NOT_EQUAL": lambda a, b: a != b,
    "GREATER": lambda a, b: a > b,
    "GREATER_OR_EQUAL": lambda a, b: a >= b,
    "LESS": lambda a, b: a < b,
    "LESS_OR_EQUAL": lambda a, b: a <= b,
}


@dataclass(frozen=True)
class ReportQuery:
    """A normalised ``/report`` query (the cache key)."""

    tz: str
    start_utc: int
    end_utc: int
    dims: tuple[str, ...]
    include: str
    mode: str
    currency: str
    workspaces: tuple[str, ...] | None
    dim_filters: tuple[tuple[str, str], ...]
    metric_filters: tuple[tuple[str, str, float], ...]
    text: str | None
    sort: str | None
    descending: bool


def _filters(
    query: dict[str, list[str]],
) -> tuple[list[tuple[str, str]], list[tuple[str, str, float]]]:
    """Parse ``filterN``/``filterNValue``/``filterNRelation`` into dimension and metric filters."""
    dim_filters: list[tuple[str, str]] = []
    metric_filters: list[tuple[str, str, float]] = []
    for name in sorted(query, key=lambda k: (len(k), k)):
        m = re.fullmatch(r"filter(\d+)", name)
        if not m:
            continue
        key = first(query, name) or ""
        value = first(query, f"{name}Value")
        if value is None:
            raise ApiError(400, "PARAMETER_MISSING", f"Missing required parameter: {name}Value")
        dim = canonical_dimension(key)
        if dim is not None:
            dim_filters.append((dim, value))
        elif key in METRIC_COLUMNS:
            relation = (first(query, f"{name}Relation") or "EQUAL").upper()
            if relation not in _RELATIONS:
                raise ApiError(400, "INVALID_QUERY", f"Invalid filter relation: {relation}")
            try:
                number = float(value)
            except ValueError as exc:
                raise ApiError(400, "INVALID_QUERY", f"Invalid filter value: {value}") from exc
            metric_filters.append((key, relation, number))
        else:
            raise ApiError(400, "INVALID_QUERY", f"Invalid filter column: {key}", [key])
    return dim_filters, metric_filters


def parse_report_query(query: dict[str, list[str]]) -> tuple[ReportQuery, int, int]:
    """Validate a ``/report`` query string; return the normalised query, limit and offset."""
    tzc, start_utc, end_utc = parse_window(query)
    raw_groups = many(query, "groupBy") or ["campaign"]
    if len(raw_groups) > MAX_GROUP_LEVELS:
        raise ApiError(
            400,
            "INVALID_QUERY",
            f"At most {MAX_GROUP_LEVELS} grouping levels are supported",
            raw_groups,
        )
    dims: list[str] = []
    for raw in raw_groups:
        dim = canonical_dimension(raw)
        if dim is None:
            raise ApiError(400, "INVALID_QUERY", f"Invalid groupBy column: {raw}", [raw])
        if dim in dims:
            raise ApiError(400, "INVALID_QUERY", f"Duplicate groupBy column: {raw}", [raw])
        dims.append(dim)
    include = (first(query, "include") or "ACTIVE").upper()
    if include not in _INCLUDE:
        raise ApiError(400, "INVALID_QUERY", f"Invalid include value: {include}")
    if include == "ENTITY":
        include = "ALL"
    mode = (first(query, "conversionTimeMode") or "VISIT").upper()
    if mode not in ("VISIT", "CONVERSION"):
        raise ApiError(400, "INVALID_QUERY", f"Invalid conversionTimeMode: {mode}")
    currency = (first(query, "currency") or "USD").upper()
    if currency not in CURRENCY_RATES:
        raise ApiError(400, "BAD_REQUEST", f"Unsupported currency: {currency}", [currency])
    workspaces = many(query, "workspaces", "workspace", "workspaceId")
    dim_filters, metric_filters = _filters(query)
    sortable = {f[0] for d in dims for f in _DIM_FIELDS[d]} | set(METRIC_COLUMNS)
    sort, descending = parse_sort(query, sortable.__contains__)
    limit, offset = parse_paging(query, DEFAULT_LIMIT, MAX_LIMIT)
    text = first(query, "filter")
    q = ReportQuery(
        tz=tzc.name,
        start_utc=start_utc,
        end_utc=end_utc,
        dims=tuple(dims),
        include=include,
        mode=mode,
        currency=currency,
        workspaces=tuple(sorted(set(workspaces))) if workspaces else None,
        dim_filters=tuple(dim_filters),
        metric_filters=tuple(metric_filters),
        text=text or None,
        sort=sort,
        descending=descending,
    )
    return q, limit, offset


# --------------------------------------------------------------------------- engine


def _transpose(rows: list[list[int]], width: int) -> list[list[int]]:
    """Columns of a list of equal-length integer rows."""
    return [list(map(operator.itemgetter(j), rows)) for j in range(width)]


@dataclass
class ReportResult:
    """An aggregated, filtered and sorted report (cached): keys plus 18 integer metric columns."""

    dims: tuple[str, ...]
    keys: list[tuple[int, ...]]
    columns: list[list[int]]
    totals: list[int]
    size: int = field(default=0)


@dataclass
class _Entry:
    """A cache slot; concurrent requests for the same key wait for the first computation."""

    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None
    size: int = 1


class ReportEngine:
    """Aggregates the dataset for ``/report`` and ``/report/conversions`` (LRU result cache)."""

    def __init__(self, dataset: Dataset, max_entries: int = 48, max_rows: int = 3_000_000) -> None:
        """Bind the engine to ``dataset``."""
        self.ds = dataset
        self.max_entries = max_entries
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._cache: OrderedDict[Any, _Entry] = OrderedDict()
        self._fields: dict[tuple[str, int], dict[str, Any]] = {}
        self._ranks: dict[str, list[int]] = {}
        self._row_types: dict[
            tuple[str, ...], tuple[type[msgspec.Struct], list[tuple[int, str]]]
        ] = {}
        self.computations = 0

    # ------------------------------------------------------------------ cache

    def cached(self, key: Any, compute: Callable[[], Any], size: Callable[[Any], int]) -> Any:
        """Return ``compute()`` memoised under ``key`` (one computation even under concurrency)."""
        with self._lock:
            entry = self._cache.get(key)
            owner = entry is None
            if entry is None:
                entry = _Entry()
                self._cache[key] = entry
            else:
                self._cache.move_to_end(key)
        if not owner:
            entry.done.wait()
            if entry.error is not None:
                raise entry.error
            return entry.value
        try:
            entry.value = compute()
            entry.size = max(1, size(entry.value))
            self.computations += 1
        except BaseException as exc:
            entry.error = exc
            with self._lock:
                self._cache.pop(key, None)
            raise
        finally:
            entry.done.set()
        self._evict()
        return entry.value

    def _evict(self) -> None:
        """Drop least recently used results beyond the entry/row budgets."""
        with self._lock:
            total = sum(e.size for e in self._cache.values())
            while len(self._cache) > 1 and (
                len(self._cache) > self.max_entries or total > self.max_rows
            ):
                _, old = self._cache.popitem(last=False)
                total -= old.size

    def clear_cache(self) -> None:
        """Forget every cached result."""
        with self._lock:
            self._cache.clear()

    # ------------------------------------------------------------------ dimension helpers

    def fields(self, dim: str, value: int) -> dict[str, Any]:
        """Row fields of one dimension value (cached for entity-like dimensions)."""
        if dim == "day":
            return {"day": self.ds.dim_label("day", value)}
        if dim == "hour":
            return {"hour": value}
        key = (dim, value)
        found = self._fields.get(key)
        if found is None:
            found = self._build_fields(dim, value)
            self._fields[key] = found
        return found

    def _build_fields(self, dim: str, value: int) -> dict[str, Any]:  # noqa: PLR0911
        """Compute the row fields of a dimension value."""
        ds = self.ds
        ws = ds.workspaces
        if dim == "campaign":
            c = ds.campaigns[value]
            ts = ds.traffic_sources[ds.camp_ts[value]]
            w = ws[ds.camp_ws[value]]
            return {
                "campaignId": c["id"],
                "campaignName": c["name"],
                "campaignNamePostfix": c["namePostfix"],
                "campaignCountry": COUNTRIES[ds.camp_country[value]][1],
                "campaignUrl": c["url"],
                "campaignCurrencyCode": c["currencyCode"],
                "campaignWorkspaceId": w["id"],
                "campaignWorkspaceName": w["name"],
                "campaignTags": list(c["tags"]),
                "trafficSourceId": ts["id"],
                "trafficSourceName": ts["name"],
                "costModel": c["costModel"]["type"],
                "revenueModel": c["revenueModel"]["type"],
            }
        if dim == "offer":
            o = ds.offers[value]
            an = ds.affiliate_networks[ds.offer_an[value]]
            w = ws[ds.entity_workspace["offer"][value]]
            return {
                "offerId": o["id"],
                "offerName": o["name"],
                "offerCountry": COUNTRIES[ds.offer_country[value]][1],
                "offerUrl": o["url"],
                "offerWorkspaceId": w["id"],
                "offerWorkspaceName": w["name"],
                "payout": ds.offer_payout[value] / 100,
                "affiliateNetworkId": an["id"],
                "affiliateNetworkName": an["name"],
            }
        if dim == "lander":
            lnd = ds.landers[value]
            w = ws[ds.entity_workspace["lander"][value]]
            code = lnd["country"] if isinstance(lnd["country"], str) else lnd["country"]["code"]
            return {
                "landerId": lnd["id"],
                "landerName": lnd["name"],
                "landerCountry": next((c[1] for c in COUNTRIES if c[0] == code), code),
                "landerUrl": lnd["url"],
                "landerWorkspaceId": w["id"],
                "landerWorkspaceName": w["name"],
                "numberOfOffers": lnd["numberOfOffers"],
            }
        if dim == "flow":
            f = ds.flows[value]
            w = ws[ds.entity_workspace["flow"][value]]
            return {
                "flowId": f["id"],
                "flowName": f["name"],
                "flowWorkspaceId": w["id"],
                "flowWorkspaceName": w["name"],
            }
        if dim == "traffic-source":
            t = ds.traffic_sources[value]
            return {"trafficSourceId": t["id"], "trafficSourceName": t["name"]}
        if dim == "affiliate-network":
            a = ds.affiliate_networks[value]
            return {"affiliateNetworkId": a["id"], "affiliateNetworkName": a["name"]}
        if dim == "country":
            return {"countryCode": COUNTRIES[value][0], "countryName": COUNTRIES[value][1]}
        return {_DIM_FIELDS[dim][0][0]: ds.dim_label(dim, value)}

    def rank(self, dim: str) -> list[int] | None:
        """Sort rank of each value of a dimension (entities by name, id); ``None`` = identity."""
        if dim in ("day", "hour"):
            return None
        found = self._ranks.get(dim)
        if found is None:
            n = self.ds.dim_cardinality(dim) or 1
            if dim in ENTITY_DIMS:
                items = self.ds.raw_entities(dim)
                order = sorted(range(n), key=lambda i: (items[i]["name"], items[i]["id"]))
            else:
                order = sorted(range(n), key=lambda i: str(self.ds.dim_label(dim, i)))
            found = [0] * n
            for pos, i in enumerate(order):
                found[i] = pos
            self._ranks[dim] = found
        return found

    def match_values(self, dim: str, value: str) -> set[int]:
        """Dimension values matching a ``filterNValue`` (id, code or name; day/hour by value)."""
        ds = self.ds
        if dim == "day":
            try:
                return {datetime.fromisoformat(value[:10]).toordinal() - EPOCH_ORDINAL}
            except ValueError:
                return set()
        if dim == "hour":
            return {int(value)} if value.strip().isdigit() else set()
        n = ds.dim_cardinality(dim) or 1
        own = [f[0] for f in _DIM_FIELDS[dim][:2] if f[0].endswith(("Id", "Name", "Code"))]
        own = own or [_DIM_FIELDS[dim][0][0]]
        out = set()
        for i in range(n):
            f = self.fields(dim, i)
            if value in {str(f[k]) for k in own} or (
                dim == "country" and value.upper() == COUNTRIES[i][0]
            ):
                out.add(i)
        return out

    # ------------------------------------------------------------------ aggregation

    def _mask(
        self,
        events: Sequence[int],
        cols: dict[str, list[int]],
        ts: Sequence[int],
        tzc: TzContext,
        q: ReportQuery,
    ) -> list[bool] | None:
        """Event-level filter (workspaces, dimension filters, include); ``None`` = keep all."""
        ds = self.ds

        def col(dim: str) -> list[int]:
            if dim not in cols:
                cols[dim] = ds.dim_values(dim, events, ts, tzc)
            return cols[dim]

        masks: list[list[bool]] = []
        if q.workspaces is not None:
            allowed_ws = [w["id"] in q.workspaces for w in ds.workspaces]
            camp_ws = ds.camp_ws
            masks.append([allowed_ws[camp_ws[c]] for c in col("campaign")])
        for dim, value in q.dim_filters:
            allowed = self.match_values(dim, value)
            masks.append([v in allowed for v in col(dim)])
        if q.include in ("ACTIVE", "ARCHIVED"):
            entity_dims = [d for d in q.dims if d in ENTITY_DIMS]
            if entity_dims:
                archived = [False] * len(events)
                for d in entity_dims:
                    flags = ds.archived[d]
                    archived = [a or flags[v] for a, v in zip(archived, col(d), strict=True)]
                masks.append(archived if q.include == "ARCHIVED" else [not a for a in archived])
            elif q.include == "ARCHIVED":
                masks.append([False] * len(events))
        if not masks:
            return None
        combined = masks[0]
        for m in masks[1:]:
            combined = [a and b for a, b in zip(combined, m, strict=True)]
        return combined

    def _keys(
        self, events: Sequence[int], ts: Sequence[int], tzc: TzContext, q: ReportQuery
    ) -> tuple[list[tuple[int, ...]], list[bool] | None]:
        """Group keys and filter mask for a list of events."""
        cols: dict[str, list[int]] = {}
        for d in q.dims:
            cols[d] = self.ds.dim_values(d, events, ts, tzc)
        mask = self._mask(events, cols, ts, tzc, q)
        return list(zip(*(cols[d] for d in q.dims), strict=True)), mask

    def aggregate(self, q: ReportQuery) -> ReportResult:
        """Aggregate, filter and sort a report (no paging)."""
        tzc = tz_context(q.tz)
        lo, hi = self.ds.event_range(q.start_utc, q.end_utc)
        acc: dict[tuple[int, ...], list[int]] = {}
        self._add_events(q, tzc, lo, hi, acc)
        self._add_conversions(q, tzc, lo, hi, acc)
        keys, metrics = self._post_filter(q, list(acc), list(acc.values()))
        columns = _transpose(metrics, WIDTH)
        order = self._order(q, keys, columns)
        return ReportResult(
            dims=q.dims,
            keys=[keys[i] for i in order],
            columns=[list(map(col.__getitem__, order)) for col in columns],
            totals=[sum(col) for col in columns],
            size=len(order),
        )

    def _add_events(
        self,
        q: ReportQuery,
        tzc: TzContext,
        lo: int,
        hi: int,
        acc: dict[tuple[int, ...], list[int]],
    ) -> None:
        """Add visits/clicks/cost... of events ``lo..hi-1`` (visit-time window) to ``acc``."""
        ds = self.ds
        keys, mask = self._keys(range(lo, hi), ds.ev_ts[lo:hi], tzc, q)
        get = acc.get
        sl = slice(lo, hi)
        for k, ok, v, u, c, e, im, co in zip(
            keys,
            mask or itertools.repeat(True),
            ds.ev_visits[sl],
            ds.ev_uv[sl],
            ds.ev_clicks[sl],
            ds.ev_errors[sl],
            ds.ev_impr[sl],
            ds.cost_column(q.currency)[sl],
            strict=False,  # the mask may be an endless repeat
        ):
            if ok:
                a = get(k)
                if a is None:
                    acc[k] = [v, u, c, e, im, co, *([0] * N_CONV)]
                else:
                    a[0] += v
                    a[1] += u
                    a[2] += c
                    a[3] += e
                    a[4] += im
                    a[5] += co

    def _add_conversions(
        self,
        q: ReportQuery,
        tzc: TzContext,
        lo: int,
        hi: int,
        acc: dict[tuple[int, ...], list[int]],
    ) -> None:
        """Add conversions by visit time (events ``lo..hi-1``) or by postback time to ``acc``."""
        ds = self.ds
        if q.mode == "VISIT":
            rlo, rhi = ds.conversion_range_by_event(lo, hi)
            records: Sequence[int] = range(rlo, rhi)
            rec_events = ds.cv_event[rlo:rhi]
            rec_ts = [ds.ev_ts[e] for e in rec_events]
        else:
            records = ds.conversions_by_postback(q.start_utc, q.end_utc)
            rec_events = [ds.cv_event[r] for r in records]
            rec_ts = [ds.cv_post[r] for r in records]
        keys, mask = self._keys(rec_events, rec_ts, tzc, q)
        rev = ds.conversion_revenue_column(q.currency)
        types = ds.cv_type
        get = acc.get
        for r, k, ok in zip(records, keys, mask or itertools.repeat(True), strict=False):
            if ok:
                a = get(k)
                if a is None:
                    a = acc[k] = [0] * WIDTH
                t = types[r]
                v = rev[r]
                a[6] += 1
                a[7] += v
                a[8 + t] += 1
                a[13 + t] += v

    def _post_filter(
        self, q: ReportQuery, keys: list[tuple[int, ...]], metrics: list[list[int]]
    ) -> tuple[list[tuple[int, ...]], list[list[int]]]:
        """Apply metric filters (``filterNRelation``) and the free-text ``filter`` to rows."""
        if not q.metric_filters and not q.text:
            return keys, metrics
        keep = [True] * len(keys)
        if q.metric_filters:
            cols = metric_columns(_transpose(metrics, WIDTH))
            for key, relation, number in q.metric_filters:
                test = _RELATIONS[relation]
                col = cols[METRIC_KEYS.index(key)]
                keep = [a and test(x, number) for a, x in zip(keep, col, strict=True)]
        if q.text:
            needle = q.text.casefold()
            keep = [
                a and self._text_match(q.dims, k, needle) for a, k in zip(keep, keys, strict=True)
            ]
        return list(itertools.compress(keys, keep)), list(itertools.compress(metrics, keep))

    def _order(
        self, q: ReportQuery, keys: list[tuple[int, ...]], columns: list[list[int]]
    ) -> list[int]:
        """Row order: by ``sort``/``direction``, ties broken by the group key (ascending)."""
        rank_cols: list[list[int]] = []
        for pos, d in enumerate(q.dims):
            dim_values = list(map(operator.itemgetter(pos), keys))
            rk = self.rank(d)
            rank_cols.append(dim_values if rk is None else list(map(rk.__getitem__, dim_values)))
        base: list[Any] = (
            rank_cols[0] if len(rank_cols) == 1 else list(zip(*rank_cols, strict=True))
        )
        order = sorted(range(len(keys)), key=base.__getitem__)
        if q.sort is None:
            if q.descending:
                order.reverse()
            return order
        if q.sort in METRIC_COLUMNS:
            values: list[Any] = metric_columns(columns)[METRIC_KEYS.index(q.sort)]
        else:
            values = self._field_values(q.dims, keys, q.sort)
        order.sort(key=values.__getitem__, reverse=q.descending)
        return order

    def _field_values(
        self, dims: Sequence[str], keys: list[tuple[int, ...]], name: str
    ) -> list[Any]:
        """Sortable values of dimension field ``name`` for each key."""
        for pos, d in enumerate(dims):
            if any(f[0] == name for f in _DIM_FIELDS[d]):
                out = []
                for k in keys:
                    value = self.fields(d, k[pos]).get(name)
                    out.append((0, value) if isinstance(value, (int, float)) else (1, str(value)))
                return out
        raise ApiError(400, "INVALID_QUERY", f"Invalid sort column: {name}")

    def _text_match(self, dims: Sequence[str], key: tuple[int, ...], needle: str) -> bool:
        """Whether any text field of the row's dimensions contains ``needle`` (case-insensitive)."""
        for d, v in zip(dims, key, strict=True):
            for val in self.fields(d, v).values():
                if isinstance(val, str) and needle in val.casefold():
                    return True
        return False

    # ------------------------------------------------------------------ responses

    def row_type(self, dims: tuple[str, ...]) -> tuple[type[msgspec.Struct], list[tuple[int, str]]]:
        """Struct type of the rows of a grouping, plus (dim position, field) per dimension field."""
        found = self._row_types.get(dims)
        if found is None:
            names: list[str] = []
            sources: list[tuple[int, str]] = []
            for pos, d in enumerate(dims):
                for key in self._field_names(d):
                    if key not in names:
                        names.append(key)
                        sources.append((pos, key))
            struct = msgspec.defstruct(
                "ReportRow_" + "_".join(d.replace("-", "_") for d in dims),
                [*names, "deleted", *METRIC_KEYS],
            )
            found = (struct, sources)
            self._row_types[dims] = found
        return found

    def _field_names(self, dim: str) -> list[str]:
        """Names of the row fields a dimension contributes (as rendered by :meth:`fields`)."""
        sample = 0 if dim != "day" else self.ds.start_ts // 86400
        return list(self.fields(dim, sample))

    def render_rows(
        self, dims: tuple[str, ...], keys: Sequence[tuple[int, ...]], columns: Sequence[list[int]]
    ) -> list[msgspec.Struct]:
        """Row objects (msgspec Structs, encoded as JSON objects) for a page of results."""
        struct, sources = self.row_type(dims)
        out: list[list[Any]] = []
        positions = [list(map(operator.itemgetter(pos), keys)) for pos in range(len(dims))]
        distinct = [set(p) for p in positions]
        for pos, name in sources:
            d = dims[pos]
            table = {v: self.fields(d, v)[name] for v in distinct[pos]}
            out.append(list(map(table.__getitem__, positions[pos])))
        deleted = [False] * len(keys)
        for pos, d in enumerate(dims):
            if d in ENTITY_DIMS:
                flags = self.ds.archived[d]
                deleted = [a or flags[v] for a, v in zip(deleted, positions[pos], strict=True)]
        out.append(deleted)
        out.extend(metric_columns(columns))
        return list(map(struct, *out))

    def report(
        self,
        query: dict[str, list[str]],
        reshape: Callable[[ReportQuery, ReportResult], ReportResult] | None = None,
    ) -> dict[str, Any]:
        """Answer ``GET /report`` (raises :class:`ApiError` on invalid queries).

        ``reshape`` (dialects) may return a changed copy of the cached result before paging.
        """
        q, limit, offset = parse_report_query(query)
        result: ReportResult = self.cached(
            ("report", q), lambda: self.aggregate(q), lambda r: r.size
        )
        if reshape is not None:
            result = reshape(q, result)
        page = slice(offset, offset + limit)
        return {
            "totalRows": len(result.keys),
            "rows": self.render_rows(
                result.dims, result.keys[page], [col[page] for col in result.columns]
            ),
            "totals": metric_dict(result.totals),
            "limit": limit,
            "offset": offset,
            "truncated": False,
            "messages": [],
            "columnMappings": COLUMN_MAPPINGS,
        }

    def conversion_row(self, r: int, tzc: TzContext, currency: str) -> dict[str, Any]:
        """One ``/report/conversions`` row for conversion record ``r``."""
        ds = self.ds
        event = ds.cv_event[r]
        post = ds.cv_post[r]
        visit = ds.ev_ts[event]
        type_id, type_name, _, _, txn = CONVERSION_TYPES[ds.cv_type[r]]
        revenue = ds.conversion_revenue_column(currency)[r] / 100
        row: dict[str, Any] = {
            "postbackTimestamp": ampm(post + tzc.offset(post)),
            "visitTimestamp": ampm(visit + tzc.offset(visit)),
            "transactionId": txn,
            "conversionType": type_name,
            "conversionTypeId": type_id,
            "conversions": 1,
            "revenue": revenue,
            "payout": revenue,
            **ds.attribution(event),
            "creativeId": "",
        }
        row.update(ds.visit_details(event, ds.cv_click[r]))
        return row

    def conversions(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """Answer ``GET /report/conversions``: conversions by postback time, paged."""
        tzc, start_utc, end_utc = parse_window(query)
        currency = (first(query, "currency") or "USD").upper()
        if currency not in CURRENCY_RATES:
            raise ApiError(400, "BAD_REQUEST", f"Unsupported currency: {currency}", [currency])
        include = (first(query, "include") or "ALL").upper()
        if include not in _INCLUDE:
            raise ApiError(400, "INVALID_QUERY", f"Invalid include value: {include}")
        if (first(query, "conversionTimeMode") or "CONVERSION").upper() not in (
            "VISIT",
            "CONVERSION",
        ):
            raise ApiError(400, "INVALID_QUERY", "Invalid conversionTimeMode")
        sort, descending = parse_sort(query, CONVERSION_SORTABLE.__contains__)
        limit, offset = parse_paging(query, DEFAULT_LIMIT, MAX_LIMIT)
        dim_filters, _ = _filters(query)
        workspaces = many(query, "workspaces", "workspace", "workspaceId")
        key = (
            "conversions",
            tzc.name,
            start_utc,
            end_utc,
            include,
            tuple(dim_filters),
            tuple(sorted(set(workspaces))) or None,
            sort,
            descending,
            currency,
            first(query, "filter") or None,
        )
        q = ReportQuery(
            tz=tzc.name,
            start_utc=start_utc,
            end_utc=end_utc,
            dims=("campaign",),
            include=include,
            mode="CONVERSION",
            currency=currency,
            workspaces=tuple(sorted(set(workspaces))) if workspaces else None,
            dim_filters=tuple(dim_filters),
            metric_filters=(),
            text=first(query, "filter") or None,
            sort=sort,
            descending=descending,
        )
        picked: list[int] = self.cached(key, lambda: self._select_conversions(q, tzc), len)
        rows = [self.conversion_row(r, tzc, currency) for r in picked[offset : offset + limit]]
        return {"totalRows": len(picked), "rows": rows, "limit": limit, "offset": offset}

    def _select_conversions(self, q: ReportQuery, tzc: TzContext) -> list[int]:
        """Conversion records of a ``/report/conversions`` query in response order."""
        ds = self.ds
        records = ds.conversions_by_postback(q.start_utc, q.end_utc)
        rec_events = [ds.cv_event[r] for r in records]
        rec_ts = [ds.cv_post[r] for r in records]
        cols: dict[str, list[int]] = {
            "campaign": ds.dim_values("campaign", rec_events, rec_ts, tzc)
        }
        mask = self._mask(rec_events, cols, rec_ts, tzc, q)
        picked = [r for r, ok in zip(records, mask or [True] * len(records), strict=True) if ok]
        if q.text:
            needle = q.text.casefold()
            picked = [
                r
                for r in picked
                if any(
                    isinstance(v, str) and needle in v.casefold()
                    for v in self.conversion_row(r, tzc, q.currency).values()
                )
            ]
        if q.sort is not None and q.sort != "postbackTimestamp":
            sort = q.sort

            def getter(r: int) -> Any:
                if sort == "visitTimestamp":
                    return ds.ev_ts[ds.cv_event[r]]
                value = self.conversion_row(r, tzc, q.currency).get(sort)
                return (0, value) if isinstance(value, (int, float)) else (1, str(value))

            picked.sort(key=getter, reverse=q.descending)
        elif q.descending:
            picked.sort(key=ds.cv_post.__getitem__, reverse=True)
        return picked


CONVERSION_SORTABLE = frozenset(
    {
        "postbackTimestamp",
        "visitTimestamp",
        "transactionId",
        "clickId",
        "externalId",
        "conversionType",
        "conversionTypeId",
        "revenue",
        "payout",
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
        "countryCode",
        "countryName",
        "os",
        "browser",
        "ip",
        *(f"customVariable{n}" for n in range(1, 11)),
    }
)

__all__ = [
    "BROWSERS",
    "COLUMN_MAPPINGS",
    "CONVERSION_SORTABLE",
    "CUSTOM_VARIABLE_DIMS",
    "CV2_VALUES",
    "CV3_VALUES",
    "DEFAULT_LIMIT",
    "OPERATING_SYSTEMS",
    "ApiError",
    "ReportEngine",
    "ReportQuery",
    "ReportResult",
    "column_mappings",
    "metric_dict",
    "parse_hour_time",
    "parse_report_query",
    "parse_window",
]
