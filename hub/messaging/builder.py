"""Builds the messaging capability: the send queue (whose deliverer the assembly runs), the
service and the typing relay."""

from __future__ import annotations

from dataclasses import dataclass

from hub.attachments.service import AttachmentService
from hub.foundation import Foundation
from hub.messaging.requests import RequestRule
from hub.messaging.send_queue import SendQueue
from hub.messaging.service import MessagingService
from hub.messaging.typing import TypingService
from hub.push.enqueue import NoPushes, PushQueueWriter
from hub.settings.sections import MessagingSettings
from storage.sql.message_lifecycle import MessageLifecycleStore
from storage.sql.messages import MessageStore


@dataclass(frozen=True, slots=True)
class Messaging:
    send_queue: SendQueue
    service: MessagingService
    typing: TypingService


def build_messaging(
    settings: MessagingSettings,
    base: Foundation,
    attachments: AttachmentService,
    pushes: PushQueueWriter | NoPushes,
) -> Messaging:
    rule = RequestRule(settings.max_request_messages, settings.requests_per_day)
    store = MessageStore(base.pool, consent=rule)
    send_queue = SendQueue(store, base.fanout, pushes)
    service = MessagingService(
        messages=store,
        send_queue=send_queue,
        memberships=base.memberships,
        lifecycle=MessageLifecycleStore(base.pool),
        attachments=attachments,
        fanout=base.fanout,
        clock=base.clock,
        sync_page_limit=settings.sync_page_limit,
        edit_window_ms=settings.edit_window_seconds * 1000,
        pushes=pushes,
        max_request_messages=settings.max_request_messages,
    )
    typing = TypingService(
        memberships=base.memberships,
        fanout=base.fanout,
        clock=base.clock,
        min_interval_ms=settings.typing_min_interval_ms,
    )
    return Messaging(send_queue, service, typing)
