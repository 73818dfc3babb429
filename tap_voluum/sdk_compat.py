"""The singer-sdk private members tap-voluum relies on, fenced in one place.

Each is called by keyword, with the reason it is needed; `tests/test_sdk_compat.py` fails
with a clear message when the installed SDK changes the signature of one of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests
    from singer_sdk import RESTStream, Stream
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


# The private members above, with the parameters tap-voluum passes by keyword.
PRIVATE_MEMBERS: dict[str, tuple[str, ...]] = {
    "RESTStream._request": ("prepared_request", "context"),
    "Stream._write_state_message": (),
}
