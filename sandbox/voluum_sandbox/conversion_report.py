"""``GET /report/conversions``: individual conversions by postback time.

Filtered, sorted and paged, with their rows (timestamps, attribution and visit details).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .catalog import CONVERSION_TYPES, CURRENCY_RATES
from .formats import ampm
from .query import (
    DEFAULT_LIMIT,
    INCLUDE_VALUES,
    MAX_LIMIT,
    ReportQuery,
    first,
    many,
    parse_paging,
    parse_sort,
    parse_window,
)
from .responses import ApiError
from .timezones import TzContext

if TYPE_CHECKING:
    from .data import Dataset
    from .reports import ReportEngine

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


def conversion_row(ds: Dataset, r: int, tzc: TzContext, currency: str) -> dict[str, Any]:
    """One ``/report/conversions`` row for conversion record ``r``."""
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


def answer(engine: ReportEngine, query: dict[str, list[str]]) -> dict[str, Any]:
    """Answer ``GET /report/conversions``: conversions by postback time, paged."""
    tzc, start_utc, end_utc = parse_window(query)
    currency = (first(query, "currency") or "USD").upper()
    if currency not in CURRENCY_RATES:
        raise ApiError(400, "BAD_REQUEST", f"Unsupported currency: {currency}", [currency])
    include = (first(query, "include") or "ALL").upper()
    if include not in INCLUDE_VALUES:
        raise ApiError(400, "INVALID_QUERY", f"Invalid include value: {include}")
    sort, descending = parse_sort(query, CONVERSION_SORTABLE.__contains__)
    limit, offset = parse_paging(query, DEFAULT_LIMIT, MAX_LIMIT)
    workspaces = many(query, "workspaces")
    q = ReportQuery(
        tz=tzc.name,
        start_utc=start_utc,
        end_utc=end_utc,
        dims=("campaign",),
        include=include,
        mode="CONVERSION",
        currency=currency,
        workspaces=tuple(sorted(set(workspaces))) if workspaces else None,
        dim_filters=(),
        metric_filters=(),
        sort=sort,
        descending=descending,
    )
    cut = engine.ds.visible_before()  # the clock: postbacks after it have not happened yet
    picked: list[int] = engine.cache.get(
        ("conversions", q, cut), lambda: _select(engine, q, tzc, cut), len
    )
    rows = [conversion_row(engine.ds, r, tzc, currency) for r in picked[offset : offset + limit]]
    return {"totalRows": len(picked), "rows": rows, "limit": limit, "offset": offset}


def _select(engine: ReportEngine, q: ReportQuery, tzc: TzContext, cut: int | None) -> list[int]:
    """Conversion records of a ``/report/conversions`` query in response order."""
    ds = engine.ds
    records = ds.conversions_by_postback(q.start_utc, q.end_utc, cut)
    rec_events = [ds.cv_event[r] for r in records]
    rec_ts = [ds.cv_post[r] for r in records]
    cols: dict[str, list[int]] = {
        "campaign": engine.dims.values("campaign", rec_events, rec_ts, tzc)
    }
    mask = engine.mask(rec_events, cols, rec_ts, tzc, q)
    picked = [r for r, ok in zip(records, mask or [True] * len(records), strict=True) if ok]
    if q.sort is not None and q.sort != "postbackTimestamp":
        sort = q.sort

        def getter(r: int) -> Any:
            if sort == "visitTimestamp":
                return ds.ev_ts[ds.cv_event[r]]
            value = conversion_row(ds, r, tzc, q.currency).get(sort)
            return (0, value) if isinstance(value, (int, float)) else (1, str(value))

        picked.sort(key=getter, reverse=q.descending)
    elif q.descending:
        picked.sort(key=ds.cv_post.__getitem__, reverse=True)
    return picked
