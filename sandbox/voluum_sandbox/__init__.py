"""Voluum sandbox: a local, deterministic Voluum-compatible HTTP API for tests, demo and benchmark.

Self-contained: imports nothing from ``tap_voluum``.
"""

from .data import Dataset
from .dialects import DIALECTS
from .reports import ReportEngine
from .server import KNOBS, SandboxServer

__all__ = ["DIALECTS", "KNOBS", "Dataset", "ReportEngine", "SandboxServer"]
