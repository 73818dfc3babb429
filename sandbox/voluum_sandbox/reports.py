"""The report engine: :class:`ReportEngine` answers ``/report`` (``/report/conversions`` reuses it).

A query (``query.py``) is aggregated over the dataset's events and conversion records: events of
the window filtered (workspaces, dimension filters, ``include``), metrics summed per group key,
metric filters applied, rows ordered by ``sort``/``direction`` with ties broken by the group key.
Results are cached per normalised query (LRU, bounded by entries and rows), so paging through
a large result only slices and renders one page. ``conversion_report.py`` answers
``/report/conversions`` with the engine's filters and cache.
"""

from __future__ import annotations

import itertools
import operator
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from .catalog import ENTITY_DIMS
from .columns import (
    COLUMN_MAPPINGS,
    DIM_FIELDS,
    METRIC_COLUMNS,
    METRIC_KEYS,
    N_CONV,
    WIDTH,
    metric_columns,
    metric_dict,
)
from .dimensions import Dimensions
from .query import RELATIONS, ReportQuery, parse_report_query
from .responses import ApiError
from .timezones import TzContext, tz_context

if TYPE_CHECKING:
    from .data import Dataset


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
class CacheEntry:
    """A cache slot; concurrent requests for the same key wait for the first computation."""

    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None
    size: int = 1


class ResultCache:
    """Results memoised per key, least recently used dropped beyond the entry/row budgets."""

    def __init__(self, max_entries: int, max_rows: int) -> None:
        """An empty cache of at most ``max_entries`` results and ``max_rows`` rows."""
        self.max_entries = max_entries
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._cache: OrderedDict[Any, CacheEntry] = OrderedDict()

    def get(self, key: Any, compute: Callable[[], Any], size: Callable[[Any], int]) -> Any:
        """Return ``compute()`` memoised under ``key`` (one computation even under concurrency)."""
        with self._lock:
            entry = self._cache.get(key)
            owner = entry is None
            if entry is None:
                entry = CacheEntry()
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

    def clear(self) -> None:
        """Forget every cached result."""
        with self._lock:
            self._cache.clear()


class ReportEngine:
    """Aggregates one dataset for ``/report`` (LRU result cache; ``/report/conversions`` too)."""

    def __init__(self, dataset: Dataset, max_entries: int = 48, max_rows: int = 3_000_000) -> None:
        """Bind the engine to ``dataset``."""
        self.ds = dataset
        self.dims = Dimensions(dataset)
        self.cache = ResultCache(max_entries, max_rows)
        self._row_types: dict[
            tuple[str, ...], tuple[type[msgspec.Struct], list[tuple[int, str]]]
        ] = {}

    def clear_cache(self) -> None:
        """Forget every cached result (the dataset changed)."""
        self.cache.clear()

    def report(
        self,
        query: dict[str, list[str]],
        reshape: Callable[[ReportQuery, ReportResult], ReportResult] | None = None,
    ) -> dict[str, Any]:
        """Answer ``GET /report`` (raises :class:`ApiError` on invalid queries).

        ``reshape`` (dialects) may return a changed copy of the cached result before paging.
        """
        q, limit, offset = parse_report_query(query)
        cut = self.ds.visible_before()  # the clock: what has happened (None = everything)
        result: ReportResult = self.cache.get(
            ("report", q, cut), lambda: self.aggregate(q, cut), lambda r: r.size
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

    # ------------------------------------------------------------------ aggregation

    def mask(
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
                cols[dim] = self.dims.values(dim, events, ts, tzc)
            return cols[dim]

        masks: list[list[bool]] = []
        if q.workspaces is not None:
            allowed_ws = [w["id"] in q.workspaces for w in ds.workspaces]
            camp_ws = ds.camp_ws
            masks.append([allowed_ws[camp_ws[c]] for c in col("campaign")])
        for dim, value in q.dim_filters:
            allowed = self.dims.match(dim, value)
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
            cols[d] = self.dims.values(d, events, ts, tzc)
        mask = self.mask(events, cols, ts, tzc, q)
        return list(zip(*(cols[d] for d in q.dims), strict=True)), mask

    def aggregate(self, q: ReportQuery, cut: int | None = None) -> ReportResult:
        """Aggregate, filter and sort a report (no paging) of what happened before ``cut``."""
        tzc = tz_context(q.tz)
        lo, hi = self.ds.event_range(q.start_utc, q.end_utc, cut)
        acc: dict[tuple[int, ...], list[int]] = {}
        self._add_events(q, tzc, lo, hi, acc, cut=cut)
        self._add_conversions(q, tzc, lo, hi, acc, cut=cut)
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
        *,
        cut: int | None,
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
            ds.cost_column(q.currency, cut)[sl],
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
        *,
        cut: int | None,
    ) -> None:
        """Add conversions by visit time (events ``lo..hi-1``) or by postback time to ``acc``
        (those whose postback is before ``cut``).
        """  # noqa: D205
        ds = self.ds
        if q.mode == "VISIT":
            records: Sequence[int] = ds.visible_conversions_of_events(lo, hi, cut)
            rec_events = [ds.cv_event[r] for r in records]
            rec_ts = [ds.ev_ts[e] for e in rec_events]
        else:
            records = ds.conversions_by_postback(q.start_utc, q.end_utc, cut)
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
        """Apply metric filters (``filterNRelation``) to rows."""
        if not q.metric_filters:
            return keys, metrics
        keep = [True] * len(keys)
        cols = metric_columns(_transpose(metrics, WIDTH))
        for key, relation, number in q.metric_filters:
            test = RELATIONS[relation]
            col = cols[METRIC_KEYS.index(key)]
            keep = [a and test(x, number) for a, x in zip(keep, col, strict=True)]
        return list(itertools.compress(keys, keep)), list(itertools.compress(metrics, keep))

    def _order(
        self, q: ReportQuery, keys: list[tuple[int, ...]], columns: list[list[int]]
    ) -> list[int]:
        """Row order: by ``sort``/``direction``, ties broken by the group key (ascending)."""
        rank_cols: list[list[int]] = []
        for pos, d in enumerate(q.dims):
            dim_values = list(map(operator.itemgetter(pos), keys))
            rk = self.dims.rank(d)
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
            if any(f[0] == name for f in DIM_FIELDS[d]):
                out = []
                for k in keys:
                    value = self.dims.fields(d, k[pos]).get(name)
                    out.append((0, value) if isinstance(value, (int, float)) else (1, str(value)))
                return out
        raise ApiError(400, "INVALID_QUERY", f"Invalid sort column: {name}")

    # ------------------------------------------------------------------ rendering

    def row_type(self, dims: tuple[str, ...]) -> tuple[type[msgspec.Struct], list[tuple[int, str]]]:
        """Struct type of the rows of a grouping, plus (dim position, field) per dimension field."""
        found = self._row_types.get(dims)
        if found is None:
            names: list[str] = []
            sources: list[tuple[int, str]] = []
            for pos, d in enumerate(dims):
                for key in self.dims.field_names(d):
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
            table = {v: self.dims.fields(d, v)[name] for v in distinct[pos]}
            out.append(list(map(table.__getitem__, positions[pos])))
        deleted = [False] * len(keys)
        for pos, d in enumerate(dims):
            if d in ENTITY_DIMS:
                flags = self.ds.archived[d]
                deleted = [a or flags[v] for a, v in zip(deleted, positions[pos], strict=True)]
        out.append(deleted)
        out.extend(metric_columns(columns))
        return list(map(struct, *out))
