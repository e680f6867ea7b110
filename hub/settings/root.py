"""The hub's one settings object, read from the environment once and passed in everywhere.

Nothing else in the code reads ``os.environ``: a test or a second node builds its own
``Settings`` and gets a hub that shares nothing with any other. The assembly hands each
capability its own section (``settings.calls``, ``settings.payments``…), never the whole.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from hub.settings.attachments import AttachmentSettings
from hub.settings.bands import BandSettings
from hub.settings.integrations import livekit_dev_instances, load_or_create_dev_secret
from hub.settings.push import PushSettings
from hub.settings.sections import (
    AccountSettings,
    ApiSettings,
    CallSettings,
    MessagingSettings,
    PaymentSettings,
    PresenceSettings,
    ServerSettings,
    SocketSettings,
    StorageSettings,
    section_from_env,
)
from hub.settings.variables import variable_rows


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the hub can be told, by section. The README's table lists it in this order."""

    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    accounts: AccountSettings = field(default_factory=AccountSettings)
    presence: PresenceSettings = field(default_factory=PresenceSettings)
    sockets: SocketSettings = field(default_factory=SocketSettings)
    messaging: MessagingSettings = field(default_factory=MessagingSettings)
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)
    bands: BandSettings = field(default_factory=BandSettings)
    calls: CallSettings = field(default_factory=CallSettings)
    payments: PaymentSettings = field(default_factory=PaymentSettings)
    push: PushSettings = field(default_factory=PushSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every variable of every section; see the README for the list."""
        env = os.environ if env is None else env
        return cls(
            **{spec.name: section_from_env(_section_type(spec.name), env) for spec in fields(cls)}
        )

    def with_defaults_filled(self) -> Settings:
        """Fill what was left empty: the dev JWT secret (kept in the data folder), a node id,
        and with no LiveKit variable at all, one local livekit-server for all three instances."""
        data_dir = self.server.data_dir
        accounts = self.accounts
        if not accounts.jwt_secret:
            accounts = replace(accounts, jwt_secret=load_or_create_dev_secret(data_dir, "jwt"))
        server = self.server
        if not server.node_id:
            server = replace(server, node_id=secrets.token_hex(6))
        calls = self.calls
        if calls.livekit_dev_defaults and not calls.livekit_instances:
            calls = replace(calls, livekit_instances=livekit_dev_instances(data_dir))
        attachments = self.attachments
        if attachments.folder is None:
            attachments = replace(attachments, folder=data_dir / "attachments")
        return replace(self, server=server, accounts=accounts, calls=calls, attachments=attachments)


def _section_type(name: str) -> type[Any]:
    """The section class of a ``Settings`` field (its default factory)."""
    factory = next(spec.default_factory for spec in fields(Settings) if spec.name == name)
    assert isinstance(factory, type)
    return factory


def configuration_rows() -> Iterator[tuple[str, str, str]]:
    """(variable, default, meaning) of every variable, section by section."""
    for spec in fields(Settings):
        yield from variable_rows(_section_type(spec.name))


def configuration_table() -> str:
    """The README's configuration table, as Markdown."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| {name} | {default} | {doc} |" for name, default, doc in configuration_rows()]
    return "\n".join(lines) + "\n"
