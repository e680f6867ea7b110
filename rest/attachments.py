"""``/api/attachments``: reserve an upload, get a download link, and (embedded store only)
the signed upload and download of the bytes themselves.

With S3 the bytes never pass through the hub: the URLs are the bucket's, and the two
``/content`` routes answer 404.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from pydantic import Field

from hub.attachments.embedded import EmbeddedBlobStore
from hub.attachments.views import AttachmentDownloadView, AttachmentUploadView
from hub.errors import NotFound
from hub.protocol.fields import Uuid
from rest.bands import request_origin
from rest.http import Body, Query, current_user, json_response, path_uuid
from rest.keys import SERVICES
from rest.spec import ApiRoutes

UPLOAD_CHUNK_BYTES = 256 * 1024


class CreateAttachmentBody(Body):
    size: int = Field(ge=1, le=2**53, description="the encrypted file's exact length in bytes")
    conversationId: Uuid = Field(description="the band's id, or the other user's (direct)")


class SignedQuery(Query):
    size: int | None = Field(default=None, ge=1, le=2**53)
    expires: int = Field(ge=0, le=2**62)
    sig: str = Field(min_length=1, max_length=64)


routes = ApiRoutes("attachments")
CONTENT = "/api/attachments/{attachment_id}/content"


@routes.post(
    "/api/attachments",
    summary="Reserve an upload of an encrypted attachment (then PUT the bytes to uploadUrl)",
    body=CreateAttachmentBody,
    answer=AttachmentUploadView,
    status=201,
)
async def create_attachment(request: web.Request, body: CreateAttachmentBody) -> web.Response:
    user_id = current_user(request)
    slot = await request.app[SERVICES].attachments.create(
        user_id, body.conversationId, body.size, request_origin(request)
    )
    return json_response(slot.wire(), status=201)


@routes.get(
    "/api/attachments/{attachment_id}",
    summary="A short-lived download link of an attachment of a message you hold",
    answer=AttachmentDownloadView,
)
async def attachment_link(request: web.Request) -> web.Response:
    user_id = current_user(request)
    attachment_id = path_uuid(request, "attachment_id")
    link = await request.app[SERVICES].attachments.download(
        user_id, attachment_id, request_origin(request)
    )
    return json_response(link.wire())


def _embedded(request: web.Request) -> EmbeddedBlobStore:
    blobs = request.app[SERVICES].attachments.blobs
    if not isinstance(blobs, EmbeddedBlobStore):
        raise NotFound("attachments are not served by the hub")
    return blobs


@routes.put(
    CONTENT,
    summary="Upload the encrypted bytes (the signed uploadUrl; exactly the reserved size)",
    query=SignedQuery,
    auth=False,
    media_type=None,
    status=204,
)
async def upload_content(request: web.Request, query: SignedQuery) -> web.Response:
    attachment_id = path_uuid(request, "attachment_id")
    if query.size is None:
        raise NotFound("no such upload")

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(UPLOAD_CHUNK_BYTES):
            yield chunk

    await _embedded(request).receive(
        attachment_id,
        size=query.size,
        expires_at_ms=query.expires,
        signature=query.sig,
        content_length=request.content_length,
        chunks=chunks(),
    )
    return web.Response(status=204)


@routes.get(
    CONTENT,
    summary="Download the encrypted bytes (the signed downloadUrl)",
    query=SignedQuery,
    auth=False,
    media_type="application/octet-stream",
)
async def download_content(request: web.Request, query: SignedQuery) -> web.StreamResponse:
    attachment_id = path_uuid(request, "attachment_id")
    if query.size is not None:
        raise NotFound("no such download")
    path = await _embedded(request).path_to_serve(
        attachment_id, expires_at_ms=query.expires, signature=query.sig
    )
    return web.FileResponse(
        path,
        headers={"Content-Type": "application/octet-stream", "Cache-Control": "private, no-store"},
    )
