"""Encrypted attachments: reserve an upload for a conversation, bind uploads to the message
that carries their keys, hand short-lived download links to the users holding that message,
and sweep what is no longer reachable.

The phone encrypts the file with a fresh key and puts that key (with the hash, type, size)
inside the message's ciphertext: the hub stores and serves bytes it cannot read, and knows
only who uploaded how many for which conversation.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Sequence

from hub.attachments.ports import BlobStore, Lease
from hub.attachments.views import AttachmentDownloadView, AttachmentUploadView
from hub.clock import Clock
from hub.errors import AttachmentUnusable, InvalidPayload, NotFound, RateLimited, TooLarge
from hub.metrics import HubMetrics
from hub.settings.attachments import AttachmentSettings
from storage.sql.attachments import AttachmentStore
from storage.sql.bands import MembershipStore
from storage.sql.users import UserStore

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
SWEEP_BATCH = 500  # attachments removed per round at most; the next round takes the rest


class AttachmentService:
    def __init__(
        self,
        *,
        rows: AttachmentStore,
        blobs: BlobStore,
        memberships: MembershipStore,
        users: UserStore,
        clock: Clock,
        metrics: HubMetrics,
        settings: AttachmentSettings,
        lease: Lease | None,
    ) -> None:
        self._rows = rows
        self.blobs = blobs
        self._memberships = memberships
        self._users = users
        self._clock = clock
        self._metrics = metrics
        self._settings = settings
        self._lease = lease

    async def create(
        self, user_id: str, conversation_id: str, size: int, origin: str
    ) -> AttachmentUploadView:
        """A new upload slot of exactly ``size`` bytes for a conversation the user may send
        into (a band they are in, or another user): anything else is ``not_found``, so a
        band's existence is not revealed."""
        if size > self._settings.max_bytes:
            raise TooLarge(
                f"an attachment is at most {self._settings.max_bytes} bytes",
                details={"max": self._settings.max_bytes},
            )
        await self._check_may_send_into(user_id, conversation_id)
        now = self._clock()
        attachment_id = str(uuid.uuid4())
        reservation = await self._rows.reserve(
            attachment_id,
            user_id,
            conversation_id,
            size,
            now_ms=now,
            quota_bytes=self._settings.bytes_per_day,
            window_ms=DAY_MS,
        )
        if not reservation.accepted:
            frees_at = (reservation.oldest_ms or now) + DAY_MS
            retry = max(1, math.ceil((frees_at - now) / 1000))
            raise RateLimited("the day's attachment quota is used up", retry_after_seconds=retry)
        self._metrics.attachment_bytes_reserved.inc(size)
        expires = now + self._settings.upload_url_seconds * 1000
        target = await self.blobs.upload_target(attachment_id, size, expires, origin)
        return AttachmentUploadView(
            id=attachment_id,
            uploadUrl=target.url,
            method="PUT",
            headers=target.headers,
            expiresAt=expires,
        )

    async def download(
        self, user_id: str, attachment_id: str, origin: str
    ) -> AttachmentDownloadView:
        """A short-lived link for a user holding a message it is bound to (or its uploader,
        before it is bound); ``not_found`` for everyone else."""
        row = await self._rows.visible(user_id, attachment_id)
        if row is None:
            raise NotFound("no such attachment")
        expires = self._clock() + self._settings.url_seconds * 1000
        url = await self.blobs.download_url(row.id, expires, origin)
        return AttachmentDownloadView(id=row.id, size=row.size, downloadUrl=url, expiresAt=expires)

    async def check_bindable(
        self, user_id: str, conversation_id: str, message_id: str, ids: Sequence[str]
    ) -> None:
        """Before a send that carries attachments (never on a send without): each must be
        the sender's, for this conversation, completely uploaded, and not bound to another
        message. The send's transaction binds them again under its locks, so a race lost
        after this check still stores nothing."""
        if len(set(ids)) != len(ids):
            raise InvalidPayload("an attachment is listed twice")
        rows = await self._rows.many(list(ids))
        for attachment_id in ids:
            row = rows.get(attachment_id)
            if row is None or row.uploader_id != user_id:
                raise NotFound("no such attachment", details={"attachment": attachment_id})
            if row.conversation_id != conversation_id:
                raise AttachmentUnusable.because(attachment_id, "another_conversation")
            if row.message_id is not None and row.message_id != message_id:
                raise AttachmentUnusable.because(attachment_id, "already_bound")
        # One store round trip's time for all of them (S3: a HEAD each, concurrently).
        sizes = await asyncio.gather(*(self.blobs.size_of(i) for i in ids))
        for attachment_id, size in zip(ids, sizes, strict=True):
            if size != rows[attachment_id].size:
                raise AttachmentUnusable.because(attachment_id, "not_uploaded")

    async def _check_may_send_into(self, user_id: str, conversation_id: str) -> None:
        if conversation_id == user_id:
            raise InvalidPayload("a direct conversation is with another user")
        members = await self._memberships.band_member_ids(conversation_id)
        if members:
            if user_id not in members:
                raise NotFound("no such conversation")
            return
        if await self._users.get(conversation_id) is None:
            raise NotFound("no such conversation")

    async def sweep_once(self) -> int:
        """Remove the bytes of uploads never bound within ``ATTACHMENT_UNBOUND_SECONDS`` and
        of deleted messages' attachments; how many were removed. A store that fails gives
        the rows back to the next round."""
        now = self._clock()
        claimed = await self._rows.claim_sweepable(
            now - self._settings.unbound_seconds * 1000, now, SWEEP_BATCH
        )
        if claimed:
            keys = [key for key, _ in claimed]
            try:
                await self.blobs.delete(keys)
            except Exception:
                await self._rows.unclaim(keys)
                raise
            self._metrics.attachments_swept.inc(len(claimed))
            log.info(
                "attachment sweep removed %d attachments (%d bytes)",
                len(claimed),
                sum(size for _, size in claimed),
            )
        await self._rows.forget_removed_before(now - DAY_MS)
        return len(claimed)

    async def run_sweeps(self) -> None:
        """Until cancelled: every ``ATTACHMENT_SWEEP_SECONDS``, on whichever node takes the
        round's lease."""
        interval = self._settings.sweep_seconds
        while True:
            try:
                if self._lease is None or await self._lease.take(max(1, interval * 1000 - 100)):
                    while await self.sweep_once() == SWEEP_BATCH:
                        pass
            except Exception:
                log.warning("attachment sweep failed; will retry", exc_info=True)
            await asyncio.sleep(interval)
