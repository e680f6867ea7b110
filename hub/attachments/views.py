"""What the attachment routes answer: the upload slot and the download link."""

from __future__ import annotations

from typing import Literal

from hub.protocol.models import View


class AttachmentUploadView(View):
    id: str
    uploadUrl: str
    method: Literal["PUT"]
    headers: dict[str, str]
    expiresAt: int


class AttachmentDownloadView(View):
    id: str
    size: int
    downloadUrl: str
    expiresAt: int
