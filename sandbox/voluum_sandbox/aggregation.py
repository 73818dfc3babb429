"""Aggregation of the report engine: filter, sum per group key and order a report's rows.

Events of the window are filtered (workspaces, dimension filters, ``include``), their metrics
summed per group key, metric filters applied, and the rows ordered by
``sort``/``direction`` with ties broken by the group key.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .catalog import COUNTRIES, ENTITY_DIMS
from .columns import DIM_FIELDS, METRIC_COLUMNS, METRIC_KEYS, N_CONV, WIDTH, metric_columns
from .formats import EPOCH_ORDINAL
from .query import RELATIONS, ReportQuery
from .report_rows import ReportRows
from .responses import ApiError
from .timezones import TzContext, tz_context


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


class Aggregation(ReportRows):
    """Part of :class:`~voluum_sandbox.reports.ReportEngine`: ``aggregate`` and its helpers."""

    _ranks: dict[str, list[int]]

    # ------------------------------------------------------------------ sort ranks and filters

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
        own = [f[0] for f in DIM_FIELDS[dim][:2] if f[0].endswith(("Id", "Name", "Code"))]
        own = own or [DIM_FIELDS[dim][0][0]]
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
            if any(f[0] == name for f in DIM_FIELDS[d]):
                out = []
                for k in keys:
                    value = self.fields(d, k[pos]).get(name)
                    out.append((0, value) if isinstance(value, (int, float)) else (1, str(value)))
                return out
        raise ApiError(400, "INVALID_QUERY", f"Invalid sort column: {name}")
