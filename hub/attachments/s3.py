"""The S3 blob store: presigned URLs from the bucket itself (``storage/blobs/s3.py``)."""

from __future__ import annotations

from hub.attachments.ports import UploadTarget
from hub.clock import Clock
from hub.errors import UpstreamUnavailable
from storage.blobs.s3 import S3Blobs, S3Unavailable


class S3BlobStore:
    def __init__(self, blobs: S3Blobs, clock: Clock) -> None:
        self._blobs = blobs
        self._clock = clock

    def _seconds_until(self, expires_at_ms: int) -> int:
        return max(1, (expires_at_ms - self._clock()) // 1000)

    async def upload_target(
        self, key: str, size: int, expires_at_ms: int, origin: str
    ) -> UploadTarget:
        url = await self._blobs.presigned_put(key, size, self._seconds_until(expires_at_ms))
        return UploadTarget(url, {"Content-Type": "application/octet-stream"})

    async def download_url(self, key: str, expires_at_ms: int, origin: str) -> str:
        return await self._blobs.presigned_get(key, self._seconds_until(expires_at_ms))

    async def size_of(self, key: str) -> int | None:
        try:
            return await self._blobs.size_of(key)
        except S3Unavailable as exc:
            raise UpstreamUnavailable("the attachment store did not answer") from exc

    async def delete(self, keys: list[str]) -> None:
        await self._blobs.delete(keys)
