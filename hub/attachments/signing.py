"""Signed URLs of the embedded store: the hub serves the bytes itself, so it must be able to
tell a URL it handed out (for this attachment, this method, this length, until this time)
from one a client made up. HMAC-SHA256 with a key derived from ``JWT_SECRET`` (shared by
every node, never logged); the signature is compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac


def derive_url_key(server_secret: str) -> bytes:
    """Its own key, so an attachment URL can never be replayed as anything else."""
    return hmac.new(server_secret.encode(), b"artist-space attachment urls v1", "sha256").digest()


def _payload(method: str, key: str, size: int | None, expires_at_ms: int) -> bytes:
    return f"{method}\n{key}\n{'' if size is None else size}\n{expires_at_ms}".encode()


def sign(url_key: bytes, method: str, key: str, size: int | None, expires_at_ms: int) -> str:
    digest = hmac.new(url_key, _payload(method, key, size, expires_at_ms), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def signature_holds(
    url_key: bytes,
    method: str,
    key: str,
    size: int | None,
    expires_at_ms: int,
    signature: str,
    now_ms: int,
) -> bool:
    """True for an unexpired URL this hub signed with exactly these values."""
    expected = sign(url_key, method, key, size, expires_at_ms)
    return now_ms < expires_at_ms and hmac.compare_digest(expected, signature)
