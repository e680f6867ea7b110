"""What the attachment service needs of a blob store: URLs a phone uploads to and downloads
from, an object's size (to bind only complete uploads), and deletion for the sweep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class UploadTarget:
    url: str
    headers: dict[str, str]


class BlobStore(Protocol):
    async def upload_target(
        self, key: str, size: int, expires_at_ms: int, origin: str
    ) -> UploadTarget:
        """Where to ``PUT`` exactly ``size`` bytes until ``expires_at_ms``; any other length
        is refused by the store itself."""

    async def download_url(self, key: str, expires_at_ms: int, origin: str) -> str: ...

    async def size_of(self, key: str) -> int | None:
        """The stored object's length, None when nothing (complete) was uploaded."""

    async def delete(self, keys: list[str]) -> None:
        """Remove the objects; keys already gone are fine."""


class Lease(Protocol):
    async def take(self, ttl_ms: int) -> bool:
        """True when this node now holds the lease for ``ttl_ms`` (one node at a time)."""
