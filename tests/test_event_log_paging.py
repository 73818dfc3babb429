"""The event log over many pages: every entry once, at the offsets Voluum served (issue 23 §4).

The shared dataset's event log fits in one page; here late `CHANGE` entries make it about
2,400 entries: three full pages of the tap's `PAGE_SIZE`, or some fifty under `page_cap`,
where Voluum serves 50 rows whatever `limit` asks, and says nothing about it.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

import pytest
import requests

from tap_voluum.streams.event_log import PAGE_SIZE, RowsPaginator
from tests.conftest import config_for
from tests.helpers import run_tap, sandbox_api
from voluum_sandbox import Dataset, SandboxServer
from voluum_sandbox.dialects import PAGE_CAP

if TYPE_CHECKING:
    from collections.abc import Iterator

UTC = timezone.utc
LATE_ENTRIES = 2300
START = "2024-01-01T00:00:00Z"  # before the first entry: the whole history is read


@pytest.fixture(scope="module")
def history() -> Dataset:
    """A small account whose event log spans many pages (late entries over two days)."""
    ds = Dataset(seed=23, start=date(2026, 2, 20), days=3, campaigns=4)
    ds.add_late_data(
        datetime(2026, 2, 21, tzinfo=UTC),
        until=datetime(2026, 2, 23, tzinfo=UTC),
        event_log_entries=LATE_ENTRIES,
        seed=1,
    )
    assert len(ds.event_log) > 2 * PAGE_SIZE
    return ds


@pytest.fixture
def server(history: Dataset) -> Iterator[SandboxServer]:
    """A sandbox of this test's own over `history`, no rate limit (many quick pages)."""
    srv = SandboxServer(dataset=history, port=0, rate_limit=None)
    srv.start()
    yield srv
    srv.stop()


def asked_offsets(srv: SandboxServer) -> list[int]:
    """The `offset` of every `/event-log` request, in the order the sandbox answered them."""
    asked = [r for r in srv.requests if r["path"] == "/event-log"]
    assert all(r["status"] == 200 for r in asked), [r["status"] for r in asked]
    return [int(r["query"].get("offset", ["0"])[0]) for r in asked]


def served_offsets(total: int, page: int) -> list[int]:
    """The offsets that walk `total` entries served `page` at a time, each entry once."""
    return list(range(0, total, page))


@pytest.mark.parametrize(
    ("dialects", "page"),
    [
        pytest.param((), PAGE_SIZE, id="full-pages"),
        pytest.param(("page_cap",), PAGE_CAP, id="capped"),
    ],
)
def test_every_entry_once_at_the_offsets_served(
    server: SandboxServer, dialects: tuple[str, ...], page: int
) -> None:
    server.configure(dialects=list(dialects))
    result = run_tap(config_for(server, start_date=START), {"event_log"})
    expected = server.dataset.event_log  # the whole history: every entry is after START
    records = result.records["event_log"]

    counts = Counter(r["id"] for r in records)
    assert not {i: n for i, n in counts.items() if n > 1}, "an entry was written twice"
    assert sorted(counts) == sorted(e["id"] for e in expected), "entries lost or foreign"
    edit_times = {e["id"]: e["editTime"] for e in expected}
    assert all(r["editTimeMs"] == edit_times[r["id"]] for r in records)
    assert [r["editTimeMs"] for r in records] == sorted(edit_times.values())
    offsets = asked_offsets(server)
    assert len(offsets) >= 3, "several pages"
    assert offsets == served_offsets(len(expected), page)


def without_total(response: requests.Response) -> requests.Response:
    """The same answer with `totalRows` left out, as some Voluum answers are."""
    body = response.json()
    del body["totalRows"]
    stripped = requests.Response()
    stripped.status_code = response.status_code
    stripped.raw = io.BytesIO(json.dumps(body).encode())
    return stripped


def test_without_total_rows_paging_reads_on_to_an_empty_page(server: SandboxServer) -> None:
    """No `totalRows`: a short (capped) page is no end; the first empty page is."""
    server.configure(dialects=["page_cap"])
    api = sandbox_api(server)
    paginator = RowsPaginator("eventLogEntries")
    offsets: list[int] = []
    ids: list[str] = []
    while not paginator.finished:
        offsets.append(paginator.current_value)
        params = {"from": "2024-01-01", "direction": "ASC", "limit": PAGE_SIZE}
        answer = api.get(
            f"{server.url}/event-log", params={**params, "offset": offsets[-1]}, timeout=10
        )
        answer.raise_for_status()
        ids += [e["id"] for e in answer.json()["eventLogEntries"]]
        paginator.advance(without_total(answer))
    total = len(server.dataset.event_log)
    assert offsets == [*served_offsets(total, PAGE_CAP), total]
    assert ids == [e["id"] for e in server.dataset.event_log]
