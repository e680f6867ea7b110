"""Attachments in an S3-compatible bucket through aiobotocore: the hub presigns PUT and GET
URLs (the bytes never pass through it), asks an object's size before binding it, and
deletes what the sweep removes.

The PUT is presigned with ``ContentLength``: the signature covers the length, so S3 itself
refuses an upload of any other size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

MAX_DELETE_KEYS = 1000  # DeleteObjects takes at most 1,000 keys


class S3Unavailable(Exception):
    """The bucket did not answer, or refused the hub's own request."""


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    endpoint_url: str | None
    region: str
    access_key_id: str | None
    secret_access_key: str | None


class S3Blobs:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    async def presigned_put(self, key: str, size: int, expires_seconds: int) -> str:
        url: str = await self._client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self._bucket, "Key": key, "ContentLength": size},
            ExpiresIn=expires_seconds,
            HttpMethod="PUT",
        )
        return url

    async def presigned_get(self, key: str, expires_seconds: int) -> str:
        url: str = await self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_seconds
        )
        return url

    async def size_of(self, key: str) -> int | None:
        try:
            head = await self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise S3Unavailable(f"head_object: {exc}") from exc
        except BotoCoreError as exc:
            raise S3Unavailable(f"head_object: {type(exc).__name__}") from exc
        return int(head["ContentLength"])

    async def delete(self, keys: list[str]) -> None:
        try:
            for start in range(0, len(keys), MAX_DELETE_KEYS):
                part = keys[start : start + MAX_DELETE_KEYS]
                answer = await self._client.delete_objects(
                    Bucket=self._bucket,
                    Delete={"Objects": [{"Key": k} for k in part], "Quiet": True},
                )
                if answer.get("Errors"):
                    raise S3Unavailable(f"delete_objects: {answer['Errors'][:3]}")
        except (ClientError, BotoCoreError) as exc:
            raise S3Unavailable(f"delete_objects: {type(exc).__name__}") from exc


@asynccontextmanager
async def open_s3(location: S3Location) -> AsyncIterator[S3Blobs]:
    """One client for the node's life (its connection pool), closed on the way down."""
    session = get_session()
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            session.create_client(
                "s3",
                region_name=location.region,
                endpoint_url=location.endpoint_url,
                aws_access_key_id=location.access_key_id,
                aws_secret_access_key=location.secret_access_key,
                config=AioConfig(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    connect_timeout=5,
                    read_timeout=30,
                    retries={"max_attempts": 2},
                ),
            )
        )
        yield S3Blobs(client, location.bucket)
