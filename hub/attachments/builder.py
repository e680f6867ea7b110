"""Builds the attachments capability: the blob store the settings choose (embedded folder,
or S3 when ``S3_BUCKET`` is set), opened and closed by the assembly as a resource, and the
service over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hub.attachments.embedded import EmbeddedBlobStore
from hub.attachments.ports import BlobStore
from hub.attachments.s3 import S3BlobStore
from hub.attachments.service import AttachmentService
from hub.attachments.signing import derive_url_key
from hub.clock import Clock
from hub.foundation import Foundation
from hub.settings import Settings
from hub.settings.attachments import AttachmentSettings
from storage.blobs.files import BlobFiles
from storage.blobs.s3 import S3Location, open_s3
from storage.redis.leases import RedisLease
from storage.sql.attachments import AttachmentStore


@asynccontextmanager
async def open_blob_store(hub_settings: Settings, clock: Clock) -> AsyncIterator[BlobStore]:
    """The store the settings choose; the embedded one signs with a key derived from
    ``JWT_SECRET`` and points at ``HUB_PUBLIC_URL`` (or the request's origin)."""
    settings = hub_settings.attachments
    data_dir = hub_settings.server.data_dir
    server_secret = hub_settings.accounts.jwt_secret
    public_url = hub_settings.api.public_url
    if settings.s3_bucket:
        location = S3Location(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=settings.aws_secret_access_key,
        )
        async with open_s3(location) as blobs:
            yield S3BlobStore(blobs, clock)
        return
    files = BlobFiles(settings.folder or data_dir / "attachments")
    files.open_folder()
    yield EmbeddedBlobStore(
        files, url_key=derive_url_key(server_secret), public_url=public_url, clock=clock
    )


def build_attachments(
    settings: AttachmentSettings, base: Foundation, blobs: BlobStore
) -> AttachmentService:
    return AttachmentService(
        rows=AttachmentStore(base.pool),
        blobs=blobs,
        memberships=base.memberships,
        users=base.users,
        clock=base.clock,
        metrics=base.metrics,
        settings=settings,
        lease=RedisLease(base.redis, base.keys.attachment_sweep_lease()),
    )
