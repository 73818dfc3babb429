"""The sandbox's dataset: a deterministic Voluum-like account generated from one seed.

:class:`Dataset` is assembled from one part per job: entities (``entities.py``), traffic and
conversions (``traffic.py``), the report engine's dimension tables (``dimensions.py``), per-visit
details (``visits.py``), the event log (``event_log.py``) and the truth oracle (``truth.py``).
This module builds them in order from ``random.Random(seed)`` and holds the change listeners
that late data (``late.py``) notifies. Money is kept in integer cents.

The vocabulary names this module used to define (``KEY_FIELD``, ``CONVERSION_TYPES``,
``DIMENSIONS``, ``tz_context``...) are re-exported from here.
"""

from __future__ import annotations

import hashlib
import inspect
import random
import threading
import weakref
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from .dimensions import DimensionTables
from .entities import EntityData
from .event_log import EventLogData
from .formats import UTC
from .late import add_late_data as _add_late_data
from .traffic import TrafficData
from .truth import TruthOracle
from .visits import VisitDetails


class Dataset(EntityData, TrafficData, DimensionTables, VisitDetails, EventLogData, TruthOracle):
    """Deterministic accounts data: entities, traffic events, conversions and the event log.

    Args:
        seed: seed of ``random.Random``; equal arguments give identical data.
        start: first UTC day of traffic; default: ``days`` days ending today (UTC).
        days: number of UTC days with traffic.
        campaigns: number of campaigns.
        events_per_campaign_hour: traffic events per campaign and UTC hour (some hours are empty).
        zones: number of distinct ``customVariable1`` values (``zone-0000`` ...).

    """

    def __init__(
        self,
        seed: int = 1,
        *,
        start: date | None = None,
        days: int = 60,
        campaigns: int = 12,
        events_per_campaign_hour: int = 3,
        zones: int = 40,
    ) -> None:
        """Generate the whole dataset."""
        if days < 1 or campaigns < 1 or zones < 1 or events_per_campaign_hour < 0:
            raise ValueError(
                "days, campaigns and zones must be >= 1; events_per_campaign_hour >= 0"
            )
        if start is None:
            start = datetime.now(UTC).date() - timedelta(days=days - 1)
        self.seed = seed
        self.start = start
        self.days = days
        self.n_campaigns = campaigns
        self.events_per_campaign_hour = events_per_campaign_hour
        self.n_zones = zones
        self.start_ts = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
        self.end_ts = self.start_ts + days * 86400
        digest = hashlib.sha256(f"voluum-sandbox:{seed}".encode()).hexdigest()
        self.access_id = f"sandbox-id-{seed}"
        self.access_key = f"sandbox-key-{digest[:32]}"
        self.email = "sandbox@example.com"
        self.password = f"sandbox-pass-{digest[32:44]}"
        rng = random.Random(seed)
        self._salt = rng.getrandbits(64)
        self.zone_values = [f"zone-{n:04d}" for n in range(zones)]
        self._build_entities(rng)
        self._build_traffic(random.Random(rng.getrandbits(64)))
        self._build_dimension_tables()
        self._build_event_log(random.Random(rng.getrandbits(64)))
        self._lock = threading.Lock()
        self._currency_cache: dict[tuple[str, str], list[int]] = {}
        self._campaign_events: list[list[int]] | None = None
        self._campaign_event_ts: list[list[int]] | None = None
        self._listeners: list[weakref.WeakMethod[Callable[[], Any]] | Callable[[], Any]] = []
        self._late_lock = threading.Lock()
        self._late_calls = 0

    def add_change_listener(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` after every change of the data (:meth:`add_late_data`).

        Bound methods are held weakly (a stopped server's report engine can go away); other
        callables strongly.  ``SandboxServer`` registers its report engine's ``clear_cache``.
        """
        ref: weakref.WeakMethod[Callable[[], Any]] | Callable[[], Any] = (
            weakref.WeakMethod(callback) if inspect.ismethod(callback) else callback
        )
        with self._late_lock:
            self._listeners[:] = [
                r for r in self._listeners if not isinstance(r, weakref.WeakMethod) or r()
            ]
            self._listeners.append(ref)

    def _data_changed(self) -> None:
        """Drop the dataset's derived caches and tell the listeners (report caches)."""
        with self._lock:
            self._currency_cache.clear()
            self._campaign_events = None
            self._campaign_event_ts = None
        for ref in list(self._listeners):
            if isinstance(ref, weakref.WeakMethod):
                method = ref()
                if method is not None:
                    method()
            else:
                ref()

    def add_late_data(
        self,
        at: datetime | str | int,
        *,
        visits: int = 0,
        conversions: int = 0,
        event_log_entries: int = 0,
        seed: int = 0,
        until: datetime | str | int | None = None,
        campaign_ids: Sequence[str] | None = None,
        max_click_age: int = 86_400,
    ) -> dict[str, Any]:
        """Add traffic, late conversions and event-log entries at/around the UTC instant ``at``.

        See :func:`voluum_sandbox.late.add_late_data` (same arguments) for the placement
        rules and the returned description of what was added.  Call it between syncs, not
        while requests are being answered.
        """
        return _add_late_data(
            self,
            at,
            visits=visits,
            conversions=conversions,
            event_log_entries=event_log_entries,
            seed=seed,
            until=until,
            campaign_ids=campaign_ids,
            max_click_age=max_click_age,
        )
