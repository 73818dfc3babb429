"""The singer-sdk private members `tap_voluum/sdk_compat.py` fences, and what they must do.

When one of these fails, the installed singer-sdk changed something tap-voluum relies on:
update `tap_voluum/sdk_compat.py` (and the pin in pyproject.toml) before anything else.
"""

from __future__ import annotations

import copy
import inspect
import io
import json
import re
from contextlib import redirect_stdout
from datetime import datetime, timezone
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import requests
import singer_sdk
from singer_sdk import RESTStream, Stream, Tap, metrics
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib import RecordMessage

from tap_voluum import sdk_compat
from tap_voluum.sdk_compat import PRIVATE_MEMBERS, RecordWriter
from tap_voluum.streams import windowed
from tap_voluum.streams.windowed import record_writer
from tap_voluum.tap import TapVoluum
from tests.conftest import config_for
from tests.helpers import catalog_for, parse_messages, run_tap

if TYPE_CHECKING:
    from collections.abc import Iterable

    from voluum_sandbox import SandboxServer

SDK = f"singer-sdk {version('singer-sdk')}"
FIX = "update tap_voluum/sdk_compat.py for this SDK version"


class _Stream(Stream):
    name = "things"
    schema = th.PropertiesList(
        th.Property("id", th.IntegerType), th.Property("at", th.DateTimeType)
    ).to_dict()
    replication_key = "at"
    is_sorted = True

    def get_records(self, context: Any) -> Iterable[dict]:
        yield {"id": 1, "at": "2026-01-01T00:00:00+00:00"}
        yield {"id": 2, "at": "2026-01-02T00:00:00+00:00"}


class _Tap(Tap):
    name = "tap-things"
    config_jsonschema = th.PropertiesList(th.Property("start_date", th.DateTimeType)).to_dict()
    message_writer_class = MsgSpecWriter

    def discover_streams(self) -> list[Stream]:
        return [_Stream(self)]


def _member(path: str) -> Any:
    owner, name = path.split(".")
    cls = getattr(singer_sdk, owner)
    assert hasattr(cls, name) or name == "_tap", f"{SDK}: {path} is gone; {FIX}"
    return getattr(cls, name, None)


@pytest.mark.parametrize("path", sorted(k for k, v in PRIVATE_MEMBERS.items() if v is not None))
def test_private_methods_keep_their_signature(path: str) -> None:
    member = _member(path)
    assert callable(member), f"{SDK}: {path} is no longer a method; {FIX}"
    parameters = dict(inspect.signature(member).parameters)
    parameters.pop("self", None)
    wanted = PRIVATE_MEMBERS[path] or ()
    passable = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    for name in wanted:
        assert name in parameters and parameters[name].kind in passable, (
            f"{SDK}: {path} no longer takes `{name}` by keyword "
            f"(signature {inspect.signature(member)}); {FIX}"
        )
    required = [
        n
        for n, p in parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    assert set(required) <= set(wanted), (
        f"{SDK}: {path} now requires {required} (signature {inspect.signature(member)}); {FIX}"
    )


def test_every_private_member_is_listed() -> None:
    """sdk_compat's calls and overrides of SDK privates are all in PRIVATE_MEMBERS."""
    source = inspect.getsource(sdk_compat)
    used = set(re.findall(r"\b(?:stream\.|super\(\)\.|def )(_(?!_)[a-z_]+)\b", source))
    listed = {path.split(".")[1] for path in PRIVATE_MEMBERS}
    assert used <= listed, f"sdk_compat uses {sorted(used - listed)} without listing them"


def test_a_stream_keeps_its_tap() -> None:
    tap = _Tap(config={})
    assert sdk_compat.tap_of(tap.streams["things"]) is tap, f"{SDK}: Stream._tap changed; {FIX}"


def _synced(tap: Tap) -> list[dict]:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with redirect_stdout(out):
        tap.sync_all()
    out.flush()
    out.seek(0)
    return parse_messages(out.read())


def test_records_and_states_go_through_the_hooked_members(monkeypatch: pytest.MonkeyPatch) -> None:
    """`_sync_records` writes each record with `_write_record_message(record)` and every
    STATE with `_write_state_message()`, which writes only when `is_flushed` is False."""
    seen: list[Any] = []

    class Writer:
        def write(self, record: dict) -> None:
            seen.append(record["id"])

        def flush(self) -> None:
            seen.append("flush")

    @sdk_compat.window_hooks
    class Hooked(_Stream):
        record_writer = None

    tap = _Tap(config={})
    stream = Hooked(tap)
    stream.record_writer = Writer()  # type: ignore[assignment]
    monkeypatch.setitem(tap.streams, "things", stream)
    messages = _synced(tap)
    assert [s for s in seen if s != "flush"] == [1, 2], f"{SDK}: records bypass the hook; {FIX}"
    assert "flush" in seen, f"{SDK}: STATE no longer goes through _write_state_message; {FIX}"
    assert not [m for m in messages if m["type"] == "RECORD"]
    # RecordWriter marks the state unflushed after each record, as the SDK does.
    stream.get_context_state(None)["replication_key_value"] = "2026-01-03T00:00:00+00:00"
    manager = stream.state_manager
    manager.is_flushed = True
    assert _synced_state(stream) == 0, f"{SDK}: a flushed state is written again; {FIX}"
    manager.is_flushed = False
    assert _synced_state(stream) == 1, f"{SDK}: is_flushed=False no longer asks for a STATE"


def _synced_state(stream: Stream) -> int:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with redirect_stdout(out):
        sdk_compat.write_state(stream)
    out.flush()
    out.seek(0)
    return sum(m["type"] == "STATE" for m in parse_messages(out.read()))


def test_a_record_line_is_the_one_msgspec_writer_writes() -> None:
    """RecordWriter's line is byte for byte what MsgSpecWriter writes for a RecordMessage."""
    tap = _Tap(config={})
    stream = tap.streams["things"]
    record = {"id": 1, "at": "2026-01-01T00:00:00+00:00", "x": 1.5, "s": "é 🚀", "n": None}
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    expected = bytes(
        MsgSpecWriter().format_message(
            RecordMessage(stream="things", record=record, time_extracted=when)
        )
    )
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    writer = RecordWriter(stream)
    with redirect_stdout(out):
        writer.new_page(when)
        writer.write(copy.deepcopy(record))
        writer.flush()
    out.seek(0)
    assert out.buffer.read() == expected, f"{SDK}: MsgSpecWriter's RECORD lines changed; {FIX}"


@pytest.mark.parametrize(
    ("bookmark", "start"),
    [
        (None, "2026-03-01T00:00:00Z"),
        ("2026-03-07T00:00:00+00:00", "2026-03-01T00:00:00Z"),
        ("2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00Z"),
    ],
)
def _lines(result_messages: list[dict]) -> list[str]:
    """Messages as comparable text: no extraction times, no signposts (times of the run)."""
    lines = []
    for message in result_messages:
        kept = {k: v for k, v in message.items() if k != "time_extracted"}
        text = json.dumps(kept, default=str)
        lines.append(re.sub(r'"replication_key_signpost": "[^"]*"', "", text))
    return lines


MAPS = {
    "stream_maps": {
        "campaign_report": {"label": "campaignId + '/' + str(visits)", "cost": "None"},
        "campaign_copy": {
            "__source__": "campaign_report",
            "__filter__": "int(campaignId[0], 16) < 8",
        },
        "conversions": {"__filter__": "revenue > 1"},
    },
    "flattening_enabled": True,
    "flattening_max_depth": 1,
}


@pytest.mark.parametrize("settings", [{}, MAPS], ids=["plain", "stream-maps"])
def test_the_fast_record_path_writes_what_the_sdk_would(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, settings: dict
) -> None:
    """Records written by RecordWriter equal the SDK's own, with a column deselected,
    stream maps (a property, a filter, a copy of the stream) and flattening; so do the
    STATE messages between them."""
    config = config_for(sandbox, page_size=9, **settings)
    streams = {"campaign_report", "conversions"}
    deselect = ("campaignName", "timeZone")
    tap = TapVoluum(config=config, catalog=catalog_for(config, streams, deselect))
    assert all(record_writer(tap.streams[name]) for name in streams), "the fast path"
    fast = run_tap(config, streams, deselect=deselect)
    monkeypatch.setattr(windowed, "record_writer", lambda stream: None)
    slow = run_tap(config, streams, deselect=deselect)
    assert fast.records["campaign_report"], "the sync wrote records"
    assert "campaignName" not in fast.records["campaign_report"][0]
    assert "timeZone" not in fast.records["campaign_report"][0]
    if settings:
        assert fast.records["campaign_copy"], "the copy of the stream has records"
        assert len(fast.records["campaign_copy"]) < len(fast.records["campaign_report"])
    assert _lines(fast.messages) == _lines(slow.messages)


@sdk_compat.window_hooks
class _Windowed(_Stream):
    """Records leave the bookmark alone; `move_bookmark` sets it in the SDK's layout."""

    record_writer = None

    def get_records(self, context: Any) -> Iterable[dict]:
        yield {"id": 1, "at": "2026-01-03T00:00:00+00:00"}
        sdk_compat.move_bookmark(self, context, "2026-01-02T23:00:00+00:00")
        yield {"id": 2, "at": "2026-01-05T00:00:00+00:00"}


class _WindowedTap(_Tap):
    def discover_streams(self) -> list[Stream]:
        return [_Windowed(self)]


def test_records_move_no_bookmark_windows_do() -> None:
    tap = _WindowedTap(config={})
    messages = _synced(tap)
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    bookmark = states[-1]["bookmarks"]["things"]
    assert bookmark["replication_key"] == "at", f"{SDK}: state layout changed; {FIX}"
    # Not the last record's 2026-01-05: the SDK no longer moves it record by record.
    assert bookmark["replication_key_value"] == "2026-01-02T23:00:00+00:00", f"{FIX}"
    resumed = _WindowedTap(config={}, state=states[-1]).streams["things"]
    resumed._write_starting_replication_value(None)
    assert resumed.get_starting_replication_key_value(None) == "2026-01-02T23:00:00+00:00"


@pytest.mark.parametrize("context", [None, {"account": "south"}])
def test_bookmark_ahead_reads_what_the_sdk_starts_from(context: dict | None) -> None:
    tap = _WindowedTap(config={})
    stream = tap.streams["things"]
    sdk_compat.move_bookmark(stream, context, "2026-01-02T23:00:00+00:00")
    state = copy.deepcopy(tap.state)
    again = _WindowedTap(config={}, state=state).streams["things"]
    ahead = sdk_compat.bookmark_ahead(again, context)
    assert ahead == "2026-01-02T23:00:00+00:00"
    assert again.tap_state == state, "reading ahead wrote nothing"
    again._write_starting_replication_value(context)
    assert ahead == again.get_starting_replication_key_value(context), f"{SDK}: {FIX}"


def test_print_about_prints_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        sdk_compat.print_about(TapVoluum, about=True, about_format="json")
    assert stop.value.code in (0, None)
    assert json.loads(capsys.readouterr().out)["name"] == "tap-voluum"


@pytest.mark.parametrize("context", [None, {"account": "south"}])
def test_an_entry_beside_the_bookmark_is_kept_and_peeked(context: dict | None) -> None:
    """A key of the tap's own in a context's state (a stamp) survives `--state` and STATE."""
    tap = _WindowedTap(config={})
    stream = tap.streams["things"]
    sdk_compat.move_bookmark(stream, context, "2026-01-02T23:00:00+00:00")
    stream.get_context_state(context)["row_settings"] = {"timezone": "UTC"}
    state = copy.deepcopy(tap.state)
    again = _WindowedTap(config={}, state=state).streams["things"]
    assert sdk_compat.peek_context_state(again, context)["row_settings"] == {"timezone": "UTC"}
    assert again.tap_state == state, "peeking wrote nothing"
    again._write_starting_replication_value(context)
    assert again.get_context_state(context)["row_settings"] == {"timezone": "UTC"}, f"{FIX}"


def test_a_tap_level_entry_rides_every_state() -> None:
    """`load_state` keeps `bookmarks` only; an entry put back is in every STATE written."""
    given = {"bookmarks": {}, "mine": {"learned": [1]}}
    tap = _WindowedTap(config={}, state=given)
    assert "mine" not in tap.state, f"{SDK}: load_state now keeps other keys; simplify"
    sdk_compat.keep_tap_entry(tap, "mine", sdk_compat.tap_entry(given, "mine"))
    states = [m["value"] for m in _synced(tap) if m["type"] == "STATE"]
    assert states and all(s["mine"] == {"learned": [1]} for s in states), f"{SDK}: {FIX}"
    assert "bookmarks" in states[-1]


class _Paged(RESTStream):
    """A REST stream of one page whose requests never leave the process."""

    name = "paged"
    path = "/things"
    url_base = "http://voluum.invalid"
    schema = _Stream.schema

    def get_url_params(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        return {"limit": 5, "offset": next_page_token or 0, "columns": ["a", "b"]}

    @property
    def http_headers(self) -> dict:
        return {"X-Mark": "1"}


class _PagedTap(_Tap):
    def discover_streams(self) -> list[Stream]:
        return [_Paged(self)]


def _answer(request: requests.PreparedRequest) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = b'[{"id": 1, "at": "2026-01-01T00:00:00+00:00"}]'
    response.request = request
    response.url = str(request.url)
    return response


def test_prepare_request_is_the_request_the_sdk_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """`prepare_request` for a token equals what `request_records` prepares for that page."""
    stream = _PagedTap(config={}).streams["paged"]
    sent: list[requests.PreparedRequest] = []

    def send(request: requests.PreparedRequest, **_: Any) -> requests.Response:
        sent.append(request)
        return _answer(request)

    monkeypatch.setattr(stream.requests_session, "send", send)
    list(stream.request_records(None))
    ours = sdk_compat.prepare_request(stream, context=None, token=None)
    assert sent, "the SDK sent its page"
    theirs = sent[0]
    assert (ours.method, ours.url) == (theirs.method, theirs.url), f"{SDK}: {FIX}"
    assert ours.headers["X-Mark"] == theirs.headers["X-Mark"], f"{SDK}: {FIX}"


def test_request_page_counts_and_costs_as_request_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """One page through `request_page`: the same decorator, request count and sync costs."""
    costs: list[list[str]] = []

    def run(send_one: Any) -> tuple[int, list[str]]:
        stream = _PagedTap(config={}).streams["paged"]
        decorated: list[bool] = []
        seen: list[str] = []
        monkeypatch.setattr(stream.requests_session, "send", lambda r, **_: _answer(r))
        monkeypatch.setattr(stream, "request_decorator", lambda f: decorated.append(True) or f)
        monkeypatch.setattr(
            stream, "update_sync_costs", lambda req, resp, ctx: seen.append(str(req.url))
        )
        counted: list[int] = []
        monkeypatch.setattr(
            metrics.Counter, "increment", lambda self, count=1: counted.append(count)
        )
        with stream.get_http_request_counter() as counter:
            send_one(stream, counter)
        count = sum(counted)
        costs.append(seen)
        assert decorated, f"{SDK}: the page no longer goes through request_decorator; {FIX}"
        return count, seen

    theirs = run(lambda stream, counter: list(stream.request_records(None)))
    ours = run(
        lambda stream, counter: sdk_compat.request_page(
            stream,
            prepared_request=sdk_compat.prepare_request(stream, context=None, token=None),
            context=None,
            counter=counter,
            read=lambda response: response.json(),
        )
    )
    assert ours[1] == theirs[1], f"{SDK}: sync costs differ; {FIX}"
    assert ours[0] == theirs[0] == 1, f"{SDK}: request counts differ; {FIX}"


class _Ordered(_Stream):
    synced: ClassVar[list[tuple[str, Any]]] = []

    @property
    def partitions(self) -> list[dict] | None:
        return [{"account": "north"}, {"account": "south"}] if self.name != "b" else None

    def get_records(self, context: Any) -> Iterable[dict]:
        self.synced.append((self.name, context))
        yield from ()


class _OrderedTap(_Tap):
    def discover_streams(self) -> list[Stream]:
        streams = []
        for name in ("a", "b", "c", "d"):
            stream = _Ordered(self, name=name)
            streams.append(stream)
        return streams


def test_sync_units_is_the_order_sync_all_syncs() -> None:
    """Selected streams in order, each partition in order; deselected ones left out."""
    tap = _OrderedTap(config={})
    tap.streams["c"].selected = False
    expected = [(s.name, c) for s, c in sdk_compat.sync_units(tap)]
    _Ordered.synced.clear()
    _synced(tap)
    assert _Ordered.synced == expected, f"{SDK}: Tap.sync_all syncs in another order; {FIX}"
    assert ("c", {"account": "north"}) not in expected and ("b", None) in expected


def test_build_tap_builds_what_tap_invoke_builds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The tap `build_tap` makes from CLI options equals the one `Tap.invoke` makes."""
    built: list[Tap] = []
    monkeypatch.setattr(_Tap, "sync_all", lambda self: built.append(self))  # noqa: PLW0108
    config = tmp_path / "config.json"
    config.write_text('{"start_date": "2026-01-01T00:00:00Z"}')
    state = '{"bookmarks": {"things": {"replication_key_value": "x"}}}'
    options = _Tap.cli.make_context(
        "tap-things", ["--config", str(config)], resilient_parsing=True
    ).params["config"]
    Tap.invoke.__func__(_Tap, config=options, state=io.StringIO(state))  # type: ignore[attr-defined]
    ours = sdk_compat.build_tap(_Tap, config=options, state=io.StringIO(state))
    assert built, f"{SDK}: Tap.invoke no longer syncs the tap it builds; {FIX}"
    assert dict(ours.config) == dict(built[0].config), f"{SDK}: {FIX}"
    assert ours.state == built[0].state, f"{SDK}: {FIX}"
