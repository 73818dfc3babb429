"""Time zones of the report engine: UTC offsets cached per 15-minute slot, shared per zone name.

The truth oracle does not use this module: it reads wall clocks with plain ``zoneinfo`` code.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class TzContext:
    """A time zone with UTC offsets cached per 15-minute slot (transitions fall on slot edges)."""

    def __init__(self, name: str) -> None:
        """Load ``name`` with zoneinfo; raises ``ValueError`` when the zone is unknown."""
        try:
            self.zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, IsADirectoryError) as exc:
            raise ValueError(f"unknown time zone {name!r}") from exc
        self.name = name
        self._slots: dict[int, int] = {}

    def offset(self, ts: int) -> int:
        """UTC offset in seconds in force at epoch second ``ts``."""
        slot = ts // 900
        off = self._slots.get(slot)
        if off is None:
            delta = datetime.fromtimestamp(slot * 900, self.zone).utcoffset()
            off = int(delta.total_seconds()) if delta is not None else 0
            self._slots[slot] = off
        return off

    def local_seconds(self, ts_list: Sequence[int]) -> list[int]:
        """Wall-clock seconds (epoch-based, as if the local time were UTC) for each timestamp."""
        if not ts_list:
            return []
        first_slot = min(ts_list) // 900
        last_slot = max(ts_list) // 900
        if last_slot - first_slot <= 200_000:
            offsets = {self.offset(slot * 900) for slot in range(first_slot, last_slot + 1)}
            if len(offsets) == 1:  # no transition in range: one offset for all
                off = offsets.pop()
                return [ts + off for ts in ts_list]
        slots = self._slots
        out: list[int] = []
        append = out.append
        for ts in ts_list:
            cached = slots.get(ts // 900)
            append(ts + (self.offset(ts) if cached is None else cached))
        return out

    def to_utc(self, local: datetime) -> int:
        """Epoch seconds of the naive wall-clock ``local`` read in this zone (fold=0 in gaps)."""
        return int(local.replace(tzinfo=self.zone).timestamp())


_TZ_CACHE: dict[str, TzContext] = {}
_TZ_LOCK = threading.Lock()


def tz_context(name: str) -> TzContext:
    """Return a shared :class:`TzContext` for ``name`` (``ValueError`` when unknown)."""
    ctx = _TZ_CACHE.get(name)
    if ctx is None:
        ctx = TzContext(name)
        with _TZ_LOCK:
            ctx = _TZ_CACHE.setdefault(name, ctx)
    return ctx
