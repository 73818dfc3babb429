"""The singer-sdk private members tap-voluum relies on, fenced in one place.

Each is called by keyword, with the reason it is needed; `tests/test_sdk_compat.py` fails
with a clear message when the installed SDK changes the signature or the behaviour of one
of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from singer_sdk import Stream

if TYPE_CHECKING:
    from collections.abc import Callable

    import requests
    from singer_sdk import RESTStream, Tap
    from singer_sdk.helpers.types import Context


def send_request(
    stream: RESTStream, *, prepared_request: requests.PreparedRequest, context: Context | None
) -> requests.Response:
    """Send one request as the SDK's paging loop does (auth, timing metric, validation).

    Why: windowed streams run their pages through a thread pool instead of the SDK's
    sequential `request_records` loop, and `_request` is the SDK's single-request step.
    """
    return stream._request(prepared_request=prepared_request, context=context)


def write_state(stream: Stream) -> None:
    """Write a STATE message now.

    Why: windowed streams bookmark after every window, not every `STATE_MSG_FREQUENCY`
    records, so a sync killed between windows resumes at the next one.
    """
    stream._write_state_message()


def tap_of(stream: Stream) -> Tap:
    """The tap a stream belongs to.

    Why: the SDK keeps it only as `Stream._tap`; the record writer checks the tap's message
    writer, and a windowed stream finds the stream synced after it.
    """
    return stream._tap


class RecordHook(Stream):
    """Lets a stream write its RECORD messages itself (`fast_write`), else the SDK does.

    Why: `Stream._write_record_message(record)` is where the SDK's `_sync_records` loop
    writes each record (deselected properties popped, stream maps, a `RecordMessage`, a
    flush); it has no public hook. Every STATE goes through `Stream._write_state_message`,
    where records written but still buffered (`flush_records`) go out first. Everything
    else in that loop stays the SDK's.
    """

    fast_write: Callable[[dict[str, Any]], None] | None = None
    """Writes one record exactly as the SDK would; None: the SDK's own path."""

    def flush_records(self) -> None:
        """Write out records `fast_write` buffered."""

    def _write_record_message(self, record: dict[str, Any]) -> None:
        write = self.fast_write
        if write is None:
            super()._write_record_message(record=record)
        else:
            write(record)

    def _write_state_message(self) -> None:
        self.flush_records()
        super()._write_state_message()


# The private members above, with the parameters tap-voluum passes by keyword (None: an
# attribute, not a method).
PRIVATE_MEMBERS: dict[str, tuple[str, ...] | None] = {
    "RESTStream._request": ("prepared_request", "context"),
    "Stream._write_state_message": (),
    "Stream._write_record_message": ("record",),
    "Stream._tap": None,
}
