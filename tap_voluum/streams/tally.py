"""What one window counted as its pages came in, and the progress line after each window.

`Tally` checks a window's rows against Voluum's `totalRows` (a window that does not add up
is never bookmarked); `Progress` logs one line per window with the time left at this pace.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tap_voluum.errors import StreamFailure
from tap_voluum.streams.record_path import unseen
from tap_voluum.streams.windows import duration

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable

    from tap_voluum.streams.pages import Page
    from tap_voluum.streams.windows import Window


class Tally:
    """One window's figures as its pages come in: rows, pages, Voluum's `totalRows`."""

    def __init__(self, window: Window, *, seen: set[int] | None) -> None:
        self.window = window
        self.seen = seen
        self.pages = self.received = self.rows = 0
        self.total: int | None = None
        self.totals: dict | None = None
        self.started = time.monotonic()

    def add_page(self, page: Page) -> None:
        """A page of the window came in (the first says `totalRows` and `totals`)."""
        if not self.pages:
            self.total, self.totals = page.total_rows, page.totals
        self.pages += 1
        self.received += page.kept

    def fresh(self, records: list[dict], keys: tuple[str, ...]) -> list[dict]:
        """The chunk's records not seen before in the window (report groups), counted."""
        if self.seen is not None:
            records = unseen(records, self.seen, keys)
        self.rows += len(records)
        return records

    def check_whole(self) -> None:
        """A window whose rows do not add up to Voluum's `totalRows` is never bookmarked."""
        rows = self.received if self.seen is None else self.rows
        if self.total is not None and rows != self.total:
            msg = (
                f"window {self.window} is not whole: {rows} rows read but Voluum's totalRows "
                f"says {self.total}; its state is not saved, run again"
            )
            raise StreamFailure(msg)


class Progress:
    """One INFO line per window: rows, requests, time, and the time left at this pace."""

    def __init__(self, logger: logging.Logger, label: str, windows_left: Callable[[], int]) -> None:
        self.logger = logger
        self.label = label
        self.windows_left = windows_left
        self.started = time.monotonic()
        self.done = 0

    def window_done(self, window: Window, tally: Tally) -> None:
        """Log the window just read."""
        self.done += 1
        left = max(self.windows_left() - 1, 0)
        pace = (time.monotonic() - self.started) / self.done
        self.logger.info(
            "%s: window %d/%d %s done: %d rows, %d requests, %.2f s; about %s left",
            self.label,
            self.done,
            self.done + left,
            window,
            tally.rows,
            tally.pages,
            time.monotonic() - tally.started,
            duration(pace * left),
        )
