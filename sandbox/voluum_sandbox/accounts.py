"""Several Voluum accounts on one sandbox port.

Each :class:`Account` has its own :class:`Dataset` (its own seed: entities, ids, names, traffic),
its own report engine and its own credentials; a session token belongs to the account that logged
in, and every data endpoint answers with that account's data. Knobs, faults and dialects are the
server's and apply to every account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .data import Dataset
from .reports import ReportEngine


@dataclass
class Account:
    """One account served by a :class:`~voluum_sandbox.server.SandboxServer`.

    ``index`` is its position in ``srv.accounts`` (0 = the first, whose credentials are also
    ``srv.access_id`` ...); ``name`` is ``"account-<index + 1>"``.
    """

    index: int
    name: str
    dataset: Dataset
    engine: ReportEngine
    email: str

    @property
    def access_id(self) -> str:
        """Access key id accepted by ``POST /auth/access/session`` for this account."""
        return self.dataset.access_id

    @property
    def access_key(self) -> str:
        """Access key secret of this account."""
        return self.dataset.access_key

    @property
    def password(self) -> str:
        """Password of this account (with :attr:`email`, for ``POST /auth/session``)."""
        return self.dataset.password

    @property
    def credentials(self) -> dict[str, str]:
        """``{name, access_id, access_key}``: one item of the tap's ``accounts`` setting."""
        return {"name": self.name, "access_id": self.access_id, "access_key": self.access_key}


def build_accounts(dataset: Dataset | None, accounts: Sequence[Dataset] | None) -> list[Account]:
    """The accounts of a server: one per dataset of ``accounts``, else one for ``dataset``.

    Raises ``ValueError`` when both are given, when ``accounts`` is empty or holds something else
    than datasets, or when two datasets share a seed (they would share entity ids).
    """
    if accounts is None:
        datasets = [dataset if dataset is not None else Dataset()]
    else:
        if dataset is not None:
            raise ValueError("give either dataset or accounts, not both")
        datasets = list(accounts)
        if not datasets:
            raise ValueError("accounts must hold at least one Dataset")
        if not all(isinstance(d, Dataset) for d in datasets):
            raise ValueError("accounts must be a list of Dataset")
        seeds = [d.seed for d in datasets]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"every account needs its own seed, got {seeds}")
    out = []
    for i, ds in enumerate(datasets):
        engine = ReportEngine(ds)
        ds.add_change_listener(engine.clear_cache)  # late data: no stale cache
        email = ds.email if i == 0 else account_email(ds)
        out.append(Account(i, f"account-{i + 1}", ds, engine, email))
    return out


def account_email(ds: Dataset) -> str:
    """Login email of an account after the first: ``sandbox+<seed>@example.com``."""
    local, _, domain = ds.email.partition("@")
    return f"{local}+{ds.seed}@{domain}"


def add_data(accounts: list[Account], data: dict[str, Any]) -> dict[str, Any]:
    """``POST /__sandbox__/add-data``: late data for one account (``"account": i``) or every one.

    One account: the dataset's answer. Several accounts, no ``account``: ``{"accounts":
    [answer, ...]}``, applied account by account (with ``campaign_ids``: only the accounts
    owning some of them, each with its own ids).
    """
    data = dict(data)
    index = data.pop("account", None)
    if index is not None:
        if not isinstance(index, int) or not 0 <= index < len(accounts):
            raise ValueError(f"account must be an index below {len(accounts)}, not {index!r}")
        return accounts[index].dataset.add_late_data(**data)
    if len(accounts) == 1:
        return accounts[0].dataset.add_late_data(**data)
    ids = data.pop("campaign_ids", None)
    if ids is not None:
        ids = list(ids)
        unknown = [c for c in ids if not any(a.dataset.entity("campaign", c) for a in accounts)]
        if unknown:
            raise ValueError(f"unknown campaign ids: {unknown}")
    answers = []
    for acc in accounts:
        if ids is None:
            answers.append(acc.dataset.add_late_data(**data))
            continue
        own = [c for c in ids if acc.dataset.entity("campaign", c) is not None]
        if own:
            answers.append(acc.dataset.add_late_data(**data, campaign_ids=own))
    return {"accounts": answers}
