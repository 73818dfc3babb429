"""The base of every tap-voluum stream: the SDK's hooks, answered by the tap's client.

Requests are limited, retried, checked and decoded by `tap_voluum.client` (one client per
tap); this class plugs that policy into the SDK's extension points (`requests_session`,
`authenticator`, `validate_response`, `request_decorator` and the backoff hooks) and
adds two things of its own: endpoints some accounts lack (a 403/404 means an empty
stream, said once), and a failure that stops one stream, not the run.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

from singer_sdk import RESTStream
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.pagination import SinglePagePaginator
from typing_extensions import override

from tap_voluum.accounts import ACCOUNT_HEADER, account_of
from tap_voluum.client import (
    VoluumClient,
    VoluumHTTP,
    decoded,
    error_message,
    extract_list,
    jitter,
    retry_line,
    retry_waits,
    retrying,
    where,
)
from tap_voluum.errors import (
    DeniedEndpointError,
    VoluumAuthError,
    VoluumConfigError,
    VoluumError,
)
from tap_voluum.shapes import Shape
from tap_voluum.streams.fields import KEY_STRING

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Iterator

    import requests
    from backoff.types import Details
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context
    from singer_sdk.pagination import BaseAPIPaginator
    from singer_sdk.streams.rest import HTTPRequest, PageContext

    from tap_voluum.auth import AccountSessions
    from tap_voluum.run import SyncRun


class TapLike(Protocol):
    """What a stream takes from its tap (`TapVoluum`) besides the SDK's own."""

    @property
    def client(self) -> VoluumClient:
        """The tap's client."""

    @property
    def run(self) -> SyncRun:
        """The tap's run."""


class VoluumStream(RESTStream[Any]):
    """Base for every tap-voluum stream."""

    records_key: str | None = None
    """Key of the list in Voluum's wrapper object (`{"campaigns": [...]}`)."""

    decode_rows_later: ClassVar[bool] = False
    """Report pages: checked and counted in the worker (`PageHead`), rows decoded later."""

    absent_means: ClassVar[str | None] = None
    """For endpoints some accounts lack: what a 403/404 there means (the stream is empty)."""
    ABSENT_STATUSES: ClassVar[tuple[int, ...]] = (403, 404)
    endpoint_absent = False

    connection_test = False
    """`--test`: read a little, write no state."""

    def __init__(self, tap: Tap, **kwargs: Any) -> None:
        super().__init__(tap, **kwargs)
        voluum = cast("TapLike", tap)
        self.client: VoluumClient = voluum.client
        """The tap's client: HTTP session, rate limiter, access-key sessions (one per tap)."""
        self.run: SyncRun = voluum.run
        """What the streams of this run share: readings, failures, the page feed."""
        self.failures: dict[str | None, str] = {}
        """Why this stream stopped, per account, once it did; the run then exits 1 at the end."""

    # --- accounts -------------------------------------------------------------------

    @property
    @override
    def partitions(self) -> list[dict] | None:
        """One partition per account: each account keeps its own bookmarks."""
        if self.parent_stream_type is not None:
            return None  # a child's contexts come from its parent's, account included
        return [{"account": name} for name in self.client.accounts]

    def settings(self, context: Context | None) -> dict[str, Any]:
        """The settings of the context's account (its own `timezone`, `currency`, ...)."""
        return self.client.account(account_of(context)).settings(self.config)

    def label(self, context: Context | None) -> str:
        """The stream's name in log lines: `account/stream` when there are several accounts."""
        account = account_of(context)
        return f"{account}/{self.name}" if account and len(self.client.accounts) > 1 else self.name

    def failed_for(self, context: Context | None) -> bool:
        """Whether this stream, or the whole account, stopped for the context's account."""
        account = account_of(context)
        return account in self.failures or account in self.run.accounts_failed

    @override
    def get_http_request(self, *, page: PageContext) -> HTTPRequest:
        """The SDK's request, marked with its account (the mark is not sent)."""
        request = super().get_http_request(page=page)
        account = account_of(page.stream_context)
        if account:
            request.headers = {**request.headers, ACCOUNT_HEADER: account}
        return request

    # --- the SDK's hooks ----------------------------------------------------------------

    @property
    @override
    def url_base(self) -> str:
        """Voluum's API root, `https://api.voluum.com` unless `api_url` says otherwise."""
        return self.client.api_url

    @property
    @override
    def requests_session(self) -> VoluumHTTP:
        """The tap's rate-limited session."""
        return self.client.http

    @property
    @override
    def authenticator(self) -> AccountSessions:
        """The tap's access-key sessions: each request gets its account's token."""
        return self.client.sessions

    @property
    @override
    def timeout(self) -> int:
        """Seconds to wait for one answer (`request_timeout`)."""
        return self.client.timeout

    @property
    @override
    def http_headers(self) -> dict:
        """Headers Voluum's clients send on every call."""
        return {"Accept": "application/json", "User-Agent": self.user_agent}

    @override
    def get_new_paginator(self) -> BaseAPIPaginator:
        """Entity lists come in one page."""
        return SinglePagePaginator()

    @override
    def validate_response(self, response: requests.Response) -> None:
        """The client's checks; a 403/404 from an endpoint this account lacks is no error."""
        if self.absent_means and response.status_code in self.ABSENT_STATUSES:
            return
        self.client.check(response, body=not self.decode_rows_later)

    @override
    def response_error_message(self, response: requests.Response) -> str:
        """One line: endpoint (no query string), status, Voluum's code and message."""
        return error_message(response)

    @override
    def request_decorator(self, func: Any) -> Any:
        """The one retry policy, through the SDK's backoff hooks below."""
        return retrying(
            func,
            max_tries=self.backoff_max_tries(),
            on_backoff=self.backoff_handler,
            waits=self.backoff_wait_generator,
            spread=self.backoff_jitter,
        )

    @override
    def backoff_max_tries(self) -> int:
        """One try plus `max_retries` retries."""
        return self.client.max_tries

    @override
    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        """Exponential waits from 0.5 s (capped at 30 s) unless Voluum says `Retry-After`."""
        return retry_waits()

    @override
    def backoff_jitter(self, value: float) -> float:
        """Spread retries by up to a quarter of the wait."""
        return jitter(value)

    @override
    def backoff_handler(self, details: Details) -> None:
        """Log each retry on one line, without query strings or headers."""
        self.logger.warning("%s", retry_line(self.name, details))

    # --- one stream's failure is that stream's alone -----------------------------------

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        """The SDK's paged request loop; a failure stops this stream alone (`isolated`)."""
        if self.failed_for(context):
            return
        with self.isolated(context):
            yield from super().get_records(context)

    @contextmanager
    def isolated(self, context: Context | None) -> Iterator[None]:
        """Around a stream's read: a failure stops this stream alone, with one ERROR line.

        A rejected access key or a denied endpoint stop that account's work alone (with
        several accounts); a bad setting still ends the whole run.
        """
        try:
            yield
        except VoluumConfigError:
            raise
        except (VoluumAuthError, DeniedEndpointError) as exc:
            if len(self.client.accounts) == 1:
                raise
            self.run.fail_account(account_of(context), str(exc), self.logger)
        except Exception as exc:
            self.fail(exc, context)

    def fail(self, exc: Exception, context: Context | None = None) -> None:
        """Stop this stream (for the context's account): one ERROR line, kept for the end."""
        why = str(exc) if isinstance(exc, (VoluumError, RetriableAPIError)) else repr(exc)
        self.failures[account_of(context)] = why
        what = self.label(context)
        self.run.failures[what] = why
        self.logger.error("%s: stream failed, the other streams go on: %s", what, why)
        self.logger.debug("%s: failure details", what, exc_info=exc)

    @cached_property
    def shape(self) -> Shape:
        """What makes each record fit the schema this stream declares (`tap_voluum.shapes`)."""
        return Shape(self.schema)

    @override
    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Every value in its declared type (objects reduced to text, "" to null); its account."""
        row = self.shape.fit(row)
        row["account"] = self.client.account(account_of(context)).name
        return row

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        """Yield the items of Voluum's list wrapper (or of a bare list)."""
        if self.absent_means and response.status_code in self.ABSENT_STATUSES:
            if not self.endpoint_absent:
                self.endpoint_absent = True
                self.logger.info(
                    "%s: Voluum answered %s for %s; %s, so the stream is empty",
                    self.name,
                    response.status_code,
                    where(response),
                    self.absent_means,
                )
            return
        yield from extract_list(decoded(response), self.records_key)


def keyed_by_account(stream: VoluumStream) -> None:
    """`account` in the stream's schema and first in its key: accounts never collide."""
    properties = stream.schema["properties"]
    if "account" not in properties:
        rest = dict(properties)
        properties.clear()
        properties.update({"account": KEY_STRING, **rest})
    keys = list(stream.primary_keys or ())
    if keys[:1] != ["account"]:
        stream.primary_keys = ["account", *keys]
