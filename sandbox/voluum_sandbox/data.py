"""The sandbox's dataset: a deterministic Voluum-like account generated from one seed.

:class:`Dataset` is a :class:`~voluum_sandbox.store.Store` (the records and their look-ups) filled
from the seed: its entities and event log (``entities.py``), its traffic events and conversion
records (``traffic.py``); with the truth helpers (``truth.py``) and late data (``late.py``) as
methods. Money is kept in integer USD cents.
"""

from __future__ import annotations

import hashlib
import random
from datetime import date, datetime, timedelta

from . import late, truth
from .entities import build_entities, build_event_log
from .formats import UTC
from .restating import plan_restatements
from .store import Store
from .traffic import build_traffic


class Dataset(Store):
    """Deterministic account data: entities, traffic events, conversions and the event log.

    Args:
        seed: seed of ``random.Random``; equal arguments give identical data.
        start: first UTC day of traffic; default: ``days`` days ending today (UTC).
        days: number of UTC days with traffic.
        campaigns: number of campaigns.
        events_per_campaign_hour: traffic events per campaign and UTC hour (some hours are empty).
        zones: number of distinct ``customVariable1`` values (``zone-0000`` ...).
        restatements: ``0``/``False`` (default): none; ``True``/``1``: a Voluum that restates
            its past at the usual density (``restating.py``; a number scales it). See
            :attr:`restatements` and the dataset's clock (:meth:`set_now`).

    """

    truth_totals = truth.truth_totals
    truth_rows = truth.truth_rows
    conversions_between = truth.conversions_between
    row_key = staticmethod(truth.row_key)
    add_late_data = late.add_late_data

    def __init__(
        self,
        seed: int = 1,
        *,
        start: date | None = None,
        days: int = 60,
        campaigns: int = 12,
        events_per_campaign_hour: int = 3,
        zones: int = 40,
        restatements: float = 0,
    ) -> None:
        """Generate the whole dataset."""
        if days < 1 or campaigns < 1 or zones < 1 or events_per_campaign_hour < 0:
            raise ValueError(
                "days, campaigns and zones must be >= 1; events_per_campaign_hour >= 0"
            )
        if isinstance(restatements, str) or not 0 <= float(restatements) <= 100:
            raise ValueError(f"restatements must be a rate from 0 to 100, not {restatements!r}")
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
        build_entities(self, rng)
        build_traffic(self, random.Random(rng.getrandbits(64)))
        build_event_log(self, random.Random(rng.getrandbits(64)))
        super().__init__()
        if restatements:
            self.restatements = plan_restatements(self, float(restatements))
