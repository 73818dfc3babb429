"""What the streams of one run share besides HTTP: the readings learned, what failed."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tap_voluum.readings import Readings

if TYPE_CHECKING:
    import logging

    from tap_voluum.restated_days import RestatedDays
    from tap_voluum.streams.sync_ahead import SyncAhead


@dataclass
class SyncRun:
    """One run's readings, failed streams (per account) and failed accounts."""

    readings: Readings = field(default_factory=Readings)
    failures: dict[str, str] = field(default_factory=dict)
    """Failed streams (`account/stream` with several accounts) and why."""
    accounts_failed: dict[str | None, str] = field(default_factory=dict)
    """Accounts whose work stopped (a rejected key, a denied endpoint) and why."""
    ahead: SyncAhead = field(init=False)
    """The page feed and the units planned ahead (set by the tap once its settings are read)."""
    restated: RestatedDays = field(init=False)
    """Which past days each account restated (set by the tap once its state is read)."""
    notices: set[str] = field(default_factory=set)
    """Run-wide notices already logged (`stamps`: rows a changed setting leaves behind)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_account(self, account: str | None, why: str, logger: logging.Logger) -> None:
        """Stop an account's work: one ERROR line naming it; the other accounts go on."""
        with self._lock:
            if account in self.accounts_failed:
                return
            self.accounts_failed[account] = why
        logger.error("account %s failed, the other accounts go on: %s", account, why)

    @property
    def failed(self) -> bool:
        """Whether anything failed."""
        return bool(self.failures or self.accounts_failed)

    def summary(self) -> str:
        """One line naming every failed account and stream, and why."""
        lines = []
        if self.accounts_failed:
            count = len(self.accounts_failed)
            parts = "; ".join(f"{name} ({why})" for name, why in self.accounts_failed.items())
            lines.append(f"{count} account{'s' if count > 1 else ''} failed: {parts}")
        if self.failures:
            count = len(self.failures)
            parts = "; ".join(f"{name} ({why})" for name, why in self.failures.items())
            lines.append(f"{count} stream{'s' if count > 1 else ''} failed: {parts}")
        return "; ".join(lines)
