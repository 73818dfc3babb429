"""A stream class a newcomer can hold in their head (issue #23).

Every stream answers to at most 50 methods and properties from the tap's own classes, has
at most three of them in its MRO (the rest are collaborators it holds), and no module of
the tap reaches into `__dict__`.
"""

from __future__ import annotations

import inspect
from functools import cached_property
from pathlib import Path

import pytest
from singer_sdk import Stream

from tap_voluum.tap import TapVoluum
from tests.conftest import config_for

MAX_MEMBERS = 50
MAX_OWN_CLASSES = 3
TAP = Path(__file__).resolve().parents[1] / "tap_voluum"


def own_classes(cls: type) -> list[type]:
    """The tap's own classes in a class's MRO."""
    return [k for k in cls.__mro__ if k.__module__.startswith("tap_voluum")]


def members(cls: type) -> set[str]:
    """Methods and properties a stream answers to from the tap's own classes."""
    found: set[str] = set()
    for klass in own_classes(cls):
        for name, value in vars(klass).items():
            kinds = (property, cached_property, staticmethod, classmethod)
            if not name.startswith("__") and (
                isinstance(value, kinds) or inspect.isfunction(value)
            ):
                found.add(name)
    return found


@pytest.fixture(scope="module")
def stream_classes(sandbox) -> list[type[Stream]]:
    tap = TapVoluum(config=config_for(sandbox))
    return sorted({type(s) for s in tap.streams.values()}, key=lambda c: c.__name__)


def test_every_stream_class_is_small(stream_classes: list[type[Stream]]) -> None:
    assert len(stream_classes) >= 8, "the tap's streams were found"
    for cls in stream_classes:
        count = len(members(cls))
        assert count <= MAX_MEMBERS, f"{cls.__name__} answers to {count} methods and properties"


def test_no_stream_inherits_more_than_three_of_the_taps_classes(
    stream_classes: list[type[Stream]],
) -> None:
    for cls in stream_classes:
        names = [k.__name__ for k in own_classes(cls)]
        assert len(names) <= MAX_OWN_CLASSES, f"{cls.__name__}: {names}"


def test_the_counts_see_what_they_count() -> None:
    class Wide:
        __module__ = "tap_voluum.example"

        def a(self) -> None: ...

        @property
        def b(self) -> int:
            return 1

    assert members(Wide) == {"a", "b"}
    assert own_classes(Wide) == [Wide]


def test_no_dict_tricks_in_the_tap() -> None:
    offenders = [p.name for p in TAP.rglob("*.py") if "__dict__" in p.read_text()]
    assert not offenders, f"__dict__ used in {offenders}"
