"""`python -m tap_voluum`."""

from tap_voluum.tap import TapVoluum

TapVoluum.cli()
