"""The pure parts of push: who gets a message push, the retry delays, the job wire format,
and the provider requests of each kind (never any content)."""

from __future__ import annotations

from hub.push.jobs import (
    BadgeChanged,
    CallEnded,
    CallRinging,
    DeviceJob,
    MessageDeleted,
    MessageItem,
    MessagesStored,
    decode_job,
    encode_job,
)
from hub.push.payloads import Push, apns_request, fcm_message
from hub.push.rules import MessageRecipient, is_expired, retry_delay_ms, wants_message_push

ITEM = MessageItem("bob", "alice", "m1", "alice", 7, None, None, 1_000)
NOW = 1_700_000_000_000


def recipient(
    item: MessageItem = ITEM, *, online: bool = False, muted: bool = False
) -> MessageRecipient:
    return MessageRecipient(item=item, device_online=online, muted=muted)


def test_only_an_offline_unmuted_recipient_of_an_alerting_message_gets_a_push():
    assert wants_message_push(recipient())
    assert not wants_message_push(recipient(online=True))
    assert not wants_message_push(recipient(muted=True))
    own = MessageItem("alice", "bob", "m1", "alice", 3, None, None, 1_000)
    assert not wants_message_push(recipient(own)), "your own message never alerts you"
    for silent in ("reaction", "edit", "delete"):
        item = MessageItem("bob", "alice", "m2", "alice", 8, None, silent, 1_000)
        assert not wants_message_push(recipient(item)), silent
    reply = MessageItem("bob", "alice", "m3", "alice", 9, None, "reply", 1_000)
    assert wants_message_push(recipient(reply))
    request = MessageItem("bob", "alice", "m4", "alice", 10, None, None, 1_000, request=True)
    assert not wants_message_push(recipient(request)), "a message request alerts nobody"


def test_retries_back_off_exponentially_unless_the_provider_says_when():
    assert [retry_delay_ms(n, 1000, None) for n in (1, 2, 3, 4)] == [1000, 2000, 4000, 8000]
    assert retry_delay_ms(30, 1000, None) == 600_000
    assert retry_delay_ms(1, 1000, 7.5) == 7500
    assert is_expired(NOW, NOW) and not is_expired(NOW + 1, NOW) and not is_expired(None, NOW)


def test_every_job_survives_the_wire():
    jobs = [
        MessagesStored(
            (ITEM, MessageItem("carol", "band1", "m1", "alice", 2, "band1", "reply", 5))
        ),
        CallRinging(("bob",), "c1", {"callId": "c1", "from": "alice"}, NOW + 30_000, NOW),
        CallEnded(("bob", "carol"), "c1", "answered_elsewhere", NOW),
        BadgeChanged("bob", NOW),
        MessageDeleted(("bob",), "m1", NOW),
        DeviceJob(
            "bob",
            "iphone",
            "message",
            {"messageId": "m1"},
            NOW,
            None,
            3,
            False,
            ("bob", "iphone", "alice"),
        ),
        DeviceJob("bob", "iphone", "call", {"callId": "c1"}, NOW, NOW + 5, 1, True),
    ]
    for job in jobs:
        assert decode_job(encode_job(job)) == job
    assert decode_job(b'{"k": "from-a-newer-node"}') is None


def test_a_message_alert_carries_ids_and_badge_only():
    fields = {"conversationId": "alice", "messageId": "m1", "from": "alice", "seq": 7}
    request = apns_request(Push("message", fields, badge=4), "app.id", NOW)
    assert request.headers == {
        "apns-push-type": "alert",
        "apns-topic": "app.id",
        "apns-priority": "10",
        "apns-expiration": str(NOW // 1000 + 86_400),
    }
    assert b'"badge":4' in request.body and b'"thread-id":"alice"' in request.body
    fcm = fcm_message(Push("message", fields, badge=4), "tok", NOW)
    assert fcm["data"] == {
        "type": "message",
        "conversationId": "alice",
        "messageId": "m1",
        "from": "alice",
        "seq": "7",
        "badge": "4",
    }
    assert fcm["android"]["priority"] == "high"


def test_a_call_rings_by_voip_until_its_deadline_and_its_end_is_silent():
    fields = {"callId": "c1", "from": "alice", "expiresAt": NOW + 25_000}
    ring = apns_request(Push("call", fields, expires_at=NOW + 25_000), "app.id", NOW)
    assert ring.voip and ring.headers["apns-topic"] == "app.id.voip"
    assert ring.headers["apns-push-type"] == "voip"
    assert ring.headers["apns-expiration"] == str((NOW + 25_000) // 1000)
    assert (
        fcm_message(Push("call", fields, expires_at=NOW + 25_000), "t", NOW)["android"]["ttl"]
        == "25s"
    )
    ended = apns_request(Push("call_ended", {"callId": "c1", "reason": "missed"}), "app.id", NOW)
    assert not ended.voip and ended.headers["apns-push-type"] == "background"
    assert ended.headers["apns-priority"] == "5" and ended.headers["apns-collapse-id"] == "c1"
    badge = apns_request(Push("badge", {}, badge=0), "app.id", NOW)
    assert badge.body == b'{"aps":{"badge":0,"content-available":1}}'
