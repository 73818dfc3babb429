"""The Voluum accounts one run reads: the `accounts` list, or the top-level access key.

Each account has a `name` (in every record and first in every key), its access key, and
may override `workspace_ids`, `currency`, `timezone` and `start_date` for itself. Every
stream reads each account as one SDK partition, context `{"account": name}`, so each
account keeps its own bookmarks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tap_voluum.errors import VoluumConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_ACCOUNT = "default"
"""The name of the one account the top-level `access_id`/`access_key` give."""
ACCOUNT_NAME_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
OVERRIDES = ("workspace_ids", "currency", "timezone", "start_date")
"""Settings an account may set for itself."""
ACCOUNT_HEADER = "X-Tap-Voluum-Account"
"""Names a request's account inside the tap; removed before the request is sent."""


@dataclass(frozen=True)
class Account:
    """One Voluum account: its name, its access key and its own settings."""

    name: str
    access_id: str
    access_key: str = field(repr=False)
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def settings(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The run's settings with this account's own on top."""
        return {**config, **{k: v for k, v in self.overrides.items() if v not in (None, "")}}


def accounts_from(config: Mapping[str, Any]) -> list[Account]:
    """The accounts the settings name: `accounts`, or the top-level access key (one form)."""
    listed = config.get("accounts") or []
    top = [name for name in ("access_id", "access_key") if str(config.get(name) or "").strip()]
    if listed and top:
        msg = "settings accounts and access_id/access_key are both set: use one of the two"
        raise VoluumConfigError(msg)
    if not listed:
        for name in ("access_id", "access_key"):
            if name not in top:
                msg = f"setting {name} is missing (or give a list of accounts in accounts)"
                raise VoluumConfigError(msg)
        name = str(config.get("account_name") or DEFAULT_ACCOUNT)
        _check_name(name, "account_name")
        return [Account(name, str(config["access_id"]), str(config["access_key"]))]
    accounts: list[Account] = []
    for index, entry in enumerate(listed):
        name = str(entry.get("name") or "")
        _check_name(name, f"accounts[{index}].name")
        if any(a.name == name for a in accounts):
            raise VoluumConfigError(f"setting accounts: the name '{name}' is used twice")
        for key in ("access_id", "access_key"):
            if not str(entry.get(key) or "").strip():
                raise VoluumConfigError(f"setting accounts[{index}] ({name}): {key} is missing")
        overrides = {k: entry[k] for k in OVERRIDES if entry.get(k) not in (None, "", [])}
        accounts.append(Account(name, str(entry["access_id"]), str(entry["access_key"]), overrides))
    return accounts


def _check_name(name: str, setting: str) -> None:
    if not re.match(ACCOUNT_NAME_PATTERN, name):
        msg = f"setting {setting}: '{name}' is not 1-64 letters, digits, - and _"
        raise VoluumConfigError(msg)


def account_of(context: Mapping[str, Any] | None) -> str | None:
    """The account a stream context is for."""
    return None if not context else context.get("account")
