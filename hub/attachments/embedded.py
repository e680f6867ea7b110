"""The embedded blob store: files in a folder of this machine (``storage/blobs/files.py``)
behind upload and download URLs that point at the hub itself and are signed with an expiry
(``signing.py``). It works on one machine out of the box; several nodes need a shared
folder, or S3."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from hub.attachments.ports import UploadTarget
from hub.attachments.signing import sign, signature_holds
from hub.clock import Clock
from hub.errors import Conflict, Forbidden, InvalidPayload, NotFound
from storage.blobs.files import AlreadyUploaded, BlobFiles, WrongLength

CONTENT_PATH = "/api/attachments/{id}/content"


class EmbeddedBlobStore:
    def __init__(self, files: BlobFiles, *, url_key: bytes, public_url: str, clock: Clock) -> None:
        self._files = files
        self._url_key = url_key
        self._public_url = public_url
        self._clock = clock

    def _url(self, origin: str, key: str, query: str) -> str:
        return f"{self._public_url or origin}{CONTENT_PATH.format(id=key)}?{query}"

    async def upload_target(
        self, key: str, size: int, expires_at_ms: int, origin: str
    ) -> UploadTarget:
        signature = sign(self._url_key, "PUT", key, size, expires_at_ms)
        url = self._url(origin, key, f"size={size}&expires={expires_at_ms}&sig={signature}")
        return UploadTarget(url, {"Content-Type": "application/octet-stream"})

    async def download_url(self, key: str, expires_at_ms: int, origin: str) -> str:
        signature = sign(self._url_key, "GET", key, None, expires_at_ms)
        return self._url(origin, key, f"expires={expires_at_ms}&sig={signature}")

    async def size_of(self, key: str) -> int | None:
        return await self._files.size_of(key)

    async def delete(self, keys: list[str]) -> None:
        await self._files.delete(keys)

    async def receive(
        self,
        key: str,
        *,
        size: int,
        expires_at_ms: int,
        signature: str,
        content_length: int | None,
        chunks: AsyncIterator[bytes],
    ) -> None:
        """An upload to a URL this hub signed: exactly ``size`` bytes, streamed to disk."""
        if not signature_holds(
            self._url_key, "PUT", key, size, expires_at_ms, signature, self._clock()
        ):
            raise Forbidden("this upload URL is not valid (expired or altered)")
        if content_length is None:
            raise InvalidPayload("an upload needs Content-Length")
        if content_length != size:
            raise InvalidPayload(
                f"this upload must be exactly {size} bytes", details={"size": size}
            )
        try:
            await self._files.write_exactly(key, size, chunks)
        except WrongLength:
            raise InvalidPayload(
                f"the upload was not exactly {size} bytes; nothing was kept",
                details={"size": size},
            ) from None
        except AlreadyUploaded:
            raise Conflict("this attachment was uploaded already") from None

    async def path_to_serve(self, key: str, *, expires_at_ms: int, signature: str) -> Path:
        """The file behind a download URL this hub signed, while it is valid."""
        if not signature_holds(
            self._url_key, "GET", key, None, expires_at_ms, signature, self._clock()
        ):
            raise Forbidden("this download URL is not valid (expired or altered)")
        if await self._files.size_of(key) is None:
            raise NotFound("no such attachment")
        return self._files.path_of(key)
