"""Windowed streams synced one after another through one page feed per tap.

The SDK syncs streams one at a time, and a stream's first request goes alone: without
help, every stream boundary would leave the rate budget idle for two round trips (the
last pages of one stream, then the first page of the next). Here the stream being read
plans the next stream's windows as it asks for its own last ones (`PageScheduler`'s
`on_last_windows`), through the same feed, so the next stream's first request goes out
while this stream's last pages come in. The next stream adopts that plan when the SDK
starts its sync, after checking it would plan the very same windows (else it starts
again); its records, bookmarks and STATE come out in its own sync only.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

from tap_voluum.sdk_compat import bookmark_ahead, tap_of
from tap_voluum.streams.base import RUN_ENDING_ERRORS, VoluumStream
from tap_voluum.streams.pages import Page, PageFeed, PageScheduler, PageToken

if TYPE_CHECKING:
    from collections.abc import Iterator

    from singer_sdk import Stream
    from singer_sdk.helpers.types import Context

    from tap_voluum.streams.windows import Window, WindowPlan


def feed_of(stream: VoluumStream) -> PageFeed:
    """The page feed of the stream's tap (kept on the tap's client), opened when needed."""
    client = stream.client
    if client.page_feed is None or client.page_feed.closed:
        client.page_feed = PageFeed(int(stream.config["max_concurrency"]))
    return client.page_feed


def release_feed(stream: VoluumStream, *, drop_all: bool = False) -> None:
    """Close the tap's feed once no stream reads or plans through it (or now: `drop_all`)."""
    client = stream.client
    feed = client.page_feed
    if feed is not None and (drop_all or not feed.schedulers):
        client.page_feed = None
        feed.close()


def stream_after(stream: Stream) -> Stream | None:
    """The stream the tap syncs after this one, as `Tap.sync_all` goes (selected, no parent)."""
    synced = [
        s
        for s in tap_of(stream).streams.values()
        if (s.selected or s.has_selected_descendents) and not s.parent_stream_type
    ]
    found = [i for i, s in enumerate(synced) if s is stream]
    return synced[found[0] + 1] if found and found[0] + 1 < len(synced) else None


def starting_value_ahead(stream: Stream, context: Context | None = None) -> Any:
    """The starting value the SDK will write down when the stream's sync begins.

    As `write_starting_replication_value` does: the bookmark, when it is for this
    replication key, or `start_date`, the later of the two (`compare_start_date`). Read
    from the state without touching it. A wrong guess costs no correctness: the plan made
    with it is dropped when the stream's own sync plans other windows.
    """
    value = bookmark_ahead(stream, context)
    start = stream.config.get("start_date")
    if start:
        value = stream.compare_start_date(value, start) if value else start
    return value


class SyncAhead(VoluumStream):
    """A stream whose pages go through the tap's feed, planned before its sync if it can be."""

    _primed: PageScheduler | None = None
    _requests: ExitStack | None = None
    _start_ahead: Any = None
    _plan: WindowPlan
    _plan_logged = False

    def window_plan(self, context: Context | None) -> WindowPlan:
        """The windows this sync reads."""
        raise NotImplementedError

    def resize(
        self, window: Window, first: Page | None, error: BaseException | None
    ) -> list[Window] | None:
        """The parts that replace a window before it is read, or None."""
        raise NotImplementedError

    @property
    def page_size(self) -> int:
        """Rows asked for per request."""
        raise NotImplementedError

    def fetch_page(self, context: Context | None, token: PageToken) -> Page:
        """One page, retried."""
        raise NotImplementedError

    def _fetch_once(self, prepared: Any, context: Context | None, token: PageToken) -> Page:
        raise NotImplementedError

    @contextmanager
    def reading(self, scheduler: PageScheduler) -> Iterator[None]:
        """While the stream reads its pages.

        Then its requests end, and the feed when no other stream plans through it (at
        once if the run ends: a signal, a rejected key).
        """
        try:
            yield
        except BaseException as exc:
            if not isinstance(exc, Exception) or isinstance(exc, RUN_ENDING_ERRORS):
                release_feed(self, drop_all=True)  # nothing more will be read
            raise
        finally:
            scheduler.close()
            self._close_requests()
            release_feed(self)

    def _scheduler(self, context: Context | None) -> PageScheduler | None:
        """The pages of this sync's windows: as planned ahead, if planned so, else anew."""
        primed, self._primed = self._primed, None
        try:
            plan = self.window_plan(context)
        except BaseException:
            if primed is not None:
                primed.close()
            self._close_requests()
            raise
        if primed is not None and (
            not primed.windows.same_range(plan) or primed.feed is not feed_of(self)
        ):
            primed.close()  # planned on other windows: start again
            primed = None
        if plan.empty:
            self._close_requests()
            release_feed(self)
            return None
        return primed or self._schedule(context, plan)

    def _schedule(self, context: Context | None, plan: WindowPlan) -> PageScheduler:
        self._open_requests()
        self._plan = plan
        self._plan_logged = False
        return PageScheduler(
            partial(self.fetch_page, context),
            plan,
            feed_of(self),
            page_size=self.page_size,
            resize=self.resize,
            on_last_windows=self._plan_next_stream,
        )

    def _plan_next_stream(self) -> None:
        """Plan the windows of the stream synced next: its first request goes out now."""
        after = stream_after(self)
        if not isinstance(after, SyncAhead) or after._primed or after.failure:
            return
        if self.connection_test or after.partitions is not None:
            return
        after._start_ahead = starting_value_ahead(after)
        try:
            plan = after.window_plan(None)
        finally:
            after._start_ahead = None
        if not plan.empty:
            after._primed = after._schedule(None, plan)

    def get_starting_replication_key_value(self, context: Context | None) -> Any | None:
        """The SDK's starting value; before the sync, the value it will start from."""
        if self._start_ahead is not None:
            return self._start_ahead
        return super().get_starting_replication_key_value(context)

    def _open_requests(self) -> None:
        """Retries, the request counter (the SDK's `http_request_count` metric)."""
        if self._requests is None:
            self._fetch = self.request_decorator(self._fetch_once)  # the SDK's retries
            self._count_lock = threading.Lock()
            self._requests = ExitStack()
            self._request_counter = self._requests.enter_context(self.get_http_request_counter())

    def _close_requests(self) -> None:
        requests, self._requests = self._requests, None
        if requests is not None:
            requests.close()
