"""Checks of the settings that their JSON schema cannot say, made before any request."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tap_voluum.accounts import accounts_from
from tap_voluum.errors import VoluumConfigError
from tap_voluum.streams.windows import parse_setting_datetime

if TYPE_CHECKING:
    from collections.abc import Mapping


def check_settings(config: Mapping[str, Any]) -> None:
    """Raise `VoluumConfigError` naming the first bad setting, before any request."""
    _check_api_url(str(config.get("api_url") or ""))
    end = _check_datetime(config, "end_date", "end_date")
    for account in accounts_from(config):
        settings = account.settings(config)
        where = f"accounts[{account.name}]." if account.overrides else ""
        start = _check_datetime(settings, "start_date", f"{where}start_date")
        if start and end and end.replace(tzinfo=None) <= start.replace(tzinfo=None):
            raise VoluumConfigError(f"setting end_date must be after {where}start_date")
        try:
            ZoneInfo(str(settings.get("timezone")))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise VoluumConfigError(
                f"setting {where}timezone: unknown time zone '{settings.get('timezone')}'"
            ) from exc


def _check_api_url(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme == "https" and parsed.hostname:
        return
    if parsed.scheme == "http" and parsed.hostname and _is_loopback(parsed.hostname):
        return
    raise VoluumConfigError(
        f"setting api_url must be an https URL (plain http only on loopback), not '{url}'"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_datetime(config: Mapping[str, Any], name: str, setting: str) -> Any:
    value = config.get(name)
    if value in (None, ""):
        return None
    try:
        return parse_setting_datetime(str(value))
    except ValueError as exc:
        raise VoluumConfigError(f"setting {setting} is not a date: '{value}'") from exc
