"""Dimension tables of the report engine: each dimension's integer value per event.

Also value labels and cardinalities; day and hour are read through a :class:`TzContext`. These
live on the dataset because they index its columns; the truth oracle does not use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from .catalog import (
    BROWSERS,
    COUNTRIES,
    CUSTOM_VARIABLE_DIMS,
    CV2_VALUES,
    CV3_VALUES,
    ENTITY_DIMS,
    OPERATING_SYSTEMS,
)
from .formats import EPOCH_ORDINAL
from .timezones import TzContext


class DimensionTables:
    """Part of :class:`~voluum_sandbox.data.Dataset`: per-dimension lookups for reports."""

    zone_values: list[str]
    ev_c: list[int]
    ev_o: list[int]
    ev_l: list[int]
    ev_country: list[int]
    ev_os: list[int]
    ev_br: list[int]
    ev_cv1: list[int]
    ev_cv2: list[int]
    ev_cv3: list[int]
    camp_flow: list[int]
    camp_ts: list[int]
    offer_an: list[int]
    _entities: dict[str, list[dict[str, Any]]]

    def _build_dimension_tables(self) -> None:
        """Per-dimension lookup tables: event columns, per-entity mappings and value labels."""
        self._direct: dict[str, list[int]] = {
            "campaign": self.ev_c,
            "offer": self.ev_o,
            "lander": self.ev_l,
            "country": self.ev_country,
            "os": self.ev_os,
            "browser": self.ev_br,
            "custom-variable-1": self.ev_cv1,
            "custom-variable-2": self.ev_cv2,
            "custom-variable-3": self.ev_cv3,
        }
        self._derived: dict[str, tuple[list[int], list[int]]] = {
            "flow": (self.camp_flow, self.ev_c),
            "traffic-source": (self.camp_ts, self.ev_c),
            "affiliate-network": (self.offer_an, self.ev_o),
        }
        self._labels: dict[str, list[Any]] = {
            **{d: [e["id"] for e in self._entities[d]] for d in ENTITY_DIMS},
            "country": [c[0] for c in COUNTRIES],
            "os": [o[0] for o in OPERATING_SYSTEMS],
            "browser": [b[0] for b in BROWSERS],
            "custom-variable-1": self.zone_values,
            "custom-variable-2": list(CV2_VALUES),
            "custom-variable-3": list(CV3_VALUES),
            **{d: [""] for d in CUSTOM_VARIABLE_DIMS[3:]},
        }

    def dim_values(
        self, dim: str, events: Sequence[int], ts: Sequence[int], tzc: TzContext
    ) -> list[int]:
        """Integer value of dimension ``dim`` for each event index (``ts`` used for day/hour)."""
        direct = self._direct.get(dim)
        if direct is not None:
            if isinstance(events, range) and events.step == 1:
                return direct[events.start : events.stop]
            return list(map(direct.__getitem__, events))
        derived = self._derived.get(dim)
        if derived is not None:
            table, col = derived
            return [table[col[i]] for i in events]
        if dim in ("day", "hour"):
            local = tzc.local_seconds(ts)
            if dim == "day":
                return [s // 86400 for s in local]
            return [s % 86400 // 3600 for s in local]
        if dim in self._labels:  # customVariable4..10 are always empty
            return [0] * len(events)
        raise KeyError(dim)

    def dim_label(self, dim: str, value: int) -> Any:
        """Identity value shown in rows for a dimension value (id, code, string, day or hour)."""
        if dim == "day":
            return date.fromordinal(EPOCH_ORDINAL + value).isoformat()
        if dim == "hour":
            return value
        return self._labels[dim][value]

    def dim_cardinality(self, dim: str) -> int | None:
        """Return the number of values of a non-time dimension (``None`` for day/hour)."""
        return None if dim in ("day", "hour") else len(self._labels[dim])
