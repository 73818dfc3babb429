"""Voluum sandbox: a local, deterministic Voluum-compatible HTTP API for tests, demo and benchmark.

Self-contained: imports nothing from ``tap_voluum``.
"""

from .data import Dataset
from .dialects import DIALECTS
from .reports import ApiError, ReportEngine
from .server import FAULT_KINDS, KNOBS, SandboxServer

__all__ = [
    "DIALECTS",
    "FAULT_KINDS",
    "KNOBS",
    "ApiError",
    "Dataset",
    "ReportEngine",
    "SandboxServer",
]
