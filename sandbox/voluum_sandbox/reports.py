"""The report engine: :class:`ReportEngine` answers ``/report`` and ``/report/conversions``.

Results are cached per normalised query (everything except ``limit``/``offset`` and the cosmetic
``columns``), so paging through a large result only slices and renders one page. The engine is
assembled from ``query.py`` (parsing), ``aggregation.py`` (sums, filters, order),
``report_rows.py`` (row fields and rendering), ``conversion_report.py`` and ``report_cache.py``.
The names this module used to define are re-exported from here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgspec

from .aggregation import ReportResult
from .columns import (
    COLUMN_MAPPINGS,
    metric_dict,
)
from .conversion_report import ConversionReport
from .data import Dataset
from .query import (
    ReportQuery,
    parse_report_query,
)
from .report_cache import CacheEntry


class ReportEngine(ConversionReport):
    """Aggregates the dataset for ``/report`` and ``/report/conversions`` (LRU result cache)."""

    def __init__(self, dataset: Dataset, max_entries: int = 48, max_rows: int = 3_000_000) -> None:
        """Bind the engine to ``dataset``."""
        self.ds = dataset
        self.max_entries = max_entries
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._cache: OrderedDict[Any, CacheEntry] = OrderedDict()
        self._fields: dict[tuple[str, int], dict[str, Any]] = {}
        self._ranks: dict[str, list[int]] = {}
        self._row_types: dict[
            tuple[str, ...], tuple[type[msgspec.Struct], list[tuple[int, str]]]
        ] = {}

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
