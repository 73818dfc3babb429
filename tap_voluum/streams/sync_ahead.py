"""Windowed streams and accounts synced one after another through one page feed per tap.

The SDK syncs streams one at a time, and each account (partition) of a stream one after
another; a stream's first request goes alone. Without help, every boundary would leave
the rate budget idle for two round trips (the last pages of one, then the first page of
the next). Here, as the unit being read asks for its last windows (`PageScheduler`'s
`on_last_windows`), the unit the SDK syncs next (`sdk_compat.sync_units`: the same
stream's next account, else the next stream's first) is planned through the same feed,
so its first request goes out while these last pages come in; units whose reads are
short are so planned one after another, side by side. A unit adopts its plan when the
SDK starts its sync, after checking it would plan the very same windows (else it starts
again); its records, bookmarks and STATE come out in its own sync only.

Why it earns its lines: with one-day windows over six daily reports, it keeps 88% of the
request budget in use (75% without).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Protocol

from tap_voluum.errors import RUN_ENDING_ERRORS
from tap_voluum.sdk_compat import sync_units
from tap_voluum.streams.pages import Page, PageFeed, PageScheduler, PageToken

if TYPE_CHECKING:
    from collections.abc import Iterator

    from singer_sdk import Stream, Tap, metrics
    from singer_sdk.helpers.types import Context

    from tap_voluum.streams.windows import Window, WindowPlan


class Plannable(Protocol):
    """What a windowed stream gives the planner (`WindowedStream` is one)."""

    name: str
    connection_test: bool

    @property
    def page_size(self) -> int:
        """Rows asked for per request."""

    def window_plan(self, context: Context | None) -> WindowPlan:
        """The windows its sync of `context` reads."""

    def resize(
        self, plan: WindowPlan, window: Window, first: Page | None, error: BaseException | None
    ) -> list[Window] | None:
        """The parts that replace a window before it is read, or None."""

    def fetch_page(self, context: Context | None, token: PageToken) -> Page:
        """One page, retried."""

    def failed_for(self, context: Context | None) -> bool:
        """Whether its work for `context`'s account stopped."""

    def get_http_request_counter(self) -> metrics.Counter:
        """The SDK's request counter of the stream."""


def unit_key(stream: Plannable | Stream, context: Context | None) -> tuple:
    """A stream and context as a key (no context: the stream's only unit)."""
    return (stream.name, *sorted((context or {}).items()))


class SyncAhead:
    """The run's page feed, the units planned before their sync, and the request counters."""

    def __init__(self, tap: Tap, workers: int) -> None:
        self.tap = tap
        self.workers = workers
        self.feed: PageFeed | None = None
        self.primed: dict[tuple, PageScheduler] = {}
        """Units planned before their sync, by `unit_key`."""
        self.counters: dict[str, metrics.Counter] = {}
        """Each stream's request counter (the SDK's `http_request_count`), while it reads."""
        self.lock = threading.Lock()

    def open_feed(self) -> PageFeed:
        """The run's page feed, opened when needed."""
        if self.feed is None or self.feed.closed:
            self.feed = PageFeed(self.workers)
        return self.feed

    def release_feed(self, *, drop_all: bool = False) -> None:
        """Close the feed once no stream reads or plans through it (or now: `drop_all`)."""
        feed = self.feed
        if feed is not None and (drop_all or not feed.schedulers):
            self.feed = None
            feed.close()

    def scheduler(self, stream: Plannable, context: Context | None) -> PageScheduler | None:
        """The pages of a sync's windows: as planned ahead, if planned so, else anew.

        None when the range holds nothing to read.
        """
        primed = self.primed.pop(unit_key(stream, context), None)
        try:
            plan = stream.window_plan(context)
        except BaseException:
            if primed is not None:
                primed.close()
            self.close_counter(stream)
            raise
        if primed is not None and (
            not primed.windows.same_range(plan) or primed.feed is not self.open_feed()
        ):
            primed.close()  # planned on other windows: start again
            primed = None
        if plan.empty:
            self.close_counter(stream)
            self.release_feed()
            return None
        return primed or self.schedule(stream, context, plan)

    def schedule(
        self, stream: Plannable, context: Context | None, plan: WindowPlan
    ) -> PageScheduler:
        """A scheduler of the plan's pages, through the run's feed."""
        self.counter(stream)
        return PageScheduler(
            partial(stream.fetch_page, context),
            plan,
            self.open_feed(),
            page_size=stream.page_size,
            resize=partial(stream.resize, plan),
            on_last_windows=partial(self.plan_next_unit, stream, context),
            kin=stream.name,
        )

    def plan_next_unit(self, stream: Plannable, context: Context | None) -> None:
        """Plan the windows of the unit synced next: its first request goes out now."""
        if stream.connection_test:
            return
        units = sync_units(self.tap)
        keys = [unit_key(s, c) for s, c in units]
        this = unit_key(stream, context)
        if this not in keys or keys.index(this) + 1 >= len(units):
            return
        after, after_context = units[keys.index(this) + 1]
        if (
            not hasattr(after, "window_plan")
            or unit_key(after, after_context) in self.primed
            or after.failed_for(after_context)  # type: ignore[attr-defined]
        ):
            return
        nxt: Plannable = after  # type: ignore[assignment]
        plan = nxt.window_plan(after_context)
        if not plan.empty:
            self.primed[unit_key(nxt, after_context)] = self.schedule(nxt, after_context, plan)

    @contextmanager
    def reading(self, stream: Plannable, scheduler: PageScheduler) -> Iterator[None]:
        """While a stream reads its pages.

        Then its requests end, and the feed when no other stream plans through it (at
        once if the run ends: a signal, a rejected key).
        """
        try:
            yield
        except BaseException as exc:
            if not isinstance(exc, Exception) or isinstance(exc, RUN_ENDING_ERRORS):
                self.release_feed(drop_all=True)  # nothing more will be read
            raise
        finally:
            scheduler.close()
            self.close_counter(stream)
            self.release_feed()

    def counter(self, stream: Plannable) -> metrics.Counter:
        """The stream's request counter, opened with its first planned request."""
        with self.lock:
            counter = self.counters.get(stream.name)
            if counter is None:
                counter = self.counters[stream.name] = stream.get_http_request_counter()
                counter.__enter__()
            return counter

    def close_counter(self, stream: Plannable) -> None:
        """Log and close the stream's request counter (the SDK's metric line)."""
        with self.lock:
            counter = self.counters.pop(stream.name, None)
        if counter is not None:
            counter.__exit__(None, None, None)
