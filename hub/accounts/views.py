"""What the accounts service answers and pushes: sessions, your own account, profiles as a
given viewer may see them, public keys, biometric keys and challenges, ``keys:changed``.

The accounts service builds these, with one function per shape below, and decides what a
viewer may see: a profile carries ``email`` only for its owner, and ``AccountView`` (which
holds the email) goes only into its owner's own login answer. None of this is on the message
path, so the views are the validated models themselves, sent with ``View.wire()``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hub.protocol.models import View, pushed
from hub.push.views import PushStatusView
from storage.sql.sessions import DeviceRow
from storage.sql.users import BiometricKeyListing, UserRow

Platform = Literal["ios", "android", "web", "other"]


class AccountView(View):
    """Your own account, as a login answers it: with the email, so never someone else's."""

    id: str
    email: str
    name: str


def account_view(user: UserRow) -> AccountView:
    return AccountView(id=user.id, email=user.email, name=user.name)


class DeviceView(View):
    """The device of a session, as its login named it."""

    id: str
    name: str | None
    platform: Platform


def device_view(device: DeviceRow) -> DeviceView:
    platform: Platform = "other"
    if device.platform in ("ios", "android", "web"):
        platform = device.platform  # type: ignore[assignment]
    return DeviceView(id=device.id, name=device.name, platform=platform)


class DeviceItemView(View):
    """One of your devices, as ``GET /api/devices`` lists it."""

    id: str
    name: str | None
    platform: Platform
    createdAt: int
    lastSeenAt: int | None
    current: bool = Field(description="the device of the token that asks")
    online: bool = Field(description="a live socket on any node")
    push: PushStatusView | None = Field(description="its push registration (never the token)")


def device_item_view(
    device: DeviceRow, *, current: bool, online: bool, push: PushStatusView | None
) -> DeviceItemView:
    base = device_view(device)
    return DeviceItemView(
        id=base.id,
        name=base.name,
        platform=base.platform,
        createdAt=device.created_at,
        lastSeenAt=device.last_seen_at,
        current=current,
        online=online,
        push=push,
    )


class DevicesView(View):
    items: list[DeviceItemView]


@pushed("devices:changed")
class DevicesChangedEvent(View):
    """``devices:changed``: to the user's connected devices after a device was added,
    renamed or removed; ``current`` is false in every item."""

    devices: list[DeviceItemView]


def devices_changed(items: list[DeviceItemView]) -> DevicesChangedEvent:
    return DevicesChangedEvent(devices=items)


class SessionView(View):
    accessToken: str
    refreshToken: str
    expiresAt: int = Field(description="access token expiry, ms since the epoch")
    user: AccountView | None = Field(default=None, description="absent on refresh")
    device: DeviceView | None = Field(
        default=None,
        description="on a login that named its device; without one, the first socket "
        "connect's `auth.device` becomes the session's device",
    )


def session_view(
    access_token: str,
    refresh_token: str,
    expires_at: int,
    user: UserRow | None,
    device: DeviceRow | None = None,
) -> SessionView:
    """A new pair of tokens; with the account on a login (``user``), not on a refresh, and
    the device when the login named one."""
    session = SessionView(
        accessToken=access_token, refreshToken=refresh_token, expiresAt=expires_at
    )
    if user is not None:
        session.user = account_view(user)
    if device is not None:
        session.device = device_view(device)
    return session


class BiometricKeyView(View):
    keyId: str


def biometric_key_view(key_id: str) -> BiometricKeyView:
    return BiometricKeyView(keyId=key_id)


class BiometricKeyItem(View):
    id: str
    deviceId: str | None = Field(description="the device that registered it (null: before devices)")
    createdAt: int
    lastUsedAt: int | None


class BiometricKeysView(View):
    items: list[BiometricKeyItem]


def biometric_keys_view(keys: list[BiometricKeyListing]) -> BiometricKeysView:
    return BiometricKeysView(
        items=[
            BiometricKeyItem(
                id=k.id, deviceId=k.device_id, createdAt=k.created_at, lastUsedAt=k.last_used_at
            )
            for k in keys
        ]
    )


class BiometricChallengeView(View):
    challengeId: str
    challenge: str = Field(description="32 random bytes, base64: sign them")
    expiresAt: int


def biometric_challenge_view(
    challenge_id: str, challenge: str, expires_at: int
) -> BiometricChallengeView:
    return BiometricChallengeView(
        challengeId=challenge_id, challenge=challenge, expiresAt=expires_at
    )


class ProfileView(View):
    id: str
    name: str
    publicKey: str | None
    email: str | None = Field(default=None, description="only in your own profile")


def profile_view(user: UserRow, *, with_email: bool) -> ProfileView:
    """A profile; ``with_email`` only when its owner is the one who asks."""
    profile = ProfileView(id=user.id, name=user.name, publicKey=user.public_key)
    if with_email:
        profile.email = user.email
    return profile


class PublicKeyView(View):
    userId: str
    publicKey: str | None
    updatedAt: int | None


def public_key_view(user: UserRow) -> PublicKeyView:
    return PublicKeyView(userId=user.id, publicKey=user.public_key, updatedAt=user.public_key_at)


@pushed("keys:changed")
class KeysChangedEvent(View):
    """``keys:changed``: to everyone who shares a band or a conversation with ``userId``."""

    userId: str
    publicKey: str = Field(description="the new Curve25519 box key, base64")
    ts: int = Field(description="when it was set")


def keys_changed_event(user_id: str, public_key: str, ts: int) -> KeysChangedEvent:
    return KeysChangedEvent(userId=user_id, publicKey=public_key, ts=ts)
