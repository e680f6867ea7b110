"""Every Redis key and channel the hub uses, each built by one named function.

All of them start with ``REDIS_PREFIX`` so several hubs or test runs can share one Redis.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str

    def user_devices(self, user_id: str) -> str:
        """ZSET of the user's live connections: member ``node|conn|device``, score = expiry ms."""
        return f"{self.prefix}:devices:{user_id}"

    def device_expiries(self) -> str:
        """ZSET of every live connection: member ``user|node|conn|device``, score = expiry ms."""
        return f"{self.prefix}:device_expiries"

    def last_seen(self, user_id: str) -> str:
        return f"{self.prefix}:last_seen:{user_id}"

    def node_channel(self, node_id: str) -> str:
        """Pub/sub channel carrying frames for the devices connected to one node."""
        return f"{self.prefix}:node:{node_id}"

    def all_nodes_channel(self) -> str:
        """Pub/sub channel every node listens to: presence changes and revocations."""
        return f"{self.prefix}:all_nodes"

    def rate_window(self, scope: str, subject: str) -> str:
        return f"{self.prefix}:rate:{scope}:{subject}"

    def biometric_challenge(self, challenge_id: str) -> str:
        return f"{self.prefix}:biometric_challenge:{challenge_id}"

    def revoked_session(self, session_id: str) -> str:
        """Set (value: the reason) while an access token of this revoked session may still be
        unexpired: its TTL is the access-token lifetime."""
        return f"{self.prefix}:revoked_session:{session_id}"

    def call(self, call_id: str) -> str:
        """HASH of one live call (see ``hub/calls/rules.CallState.to_fields``), with a TTL."""
        return f"{self.prefix}:call:{call_id}"

    def call_deadlines(self) -> str:
        """ZSET of every live call: member call id, score = when the sweep must look at it."""
        return f"{self.prefix}:call_deadlines"

    def user_call(self, user_id: str) -> str:
        """The id of the answered call the user is in (for ``busy``), with a TTL."""
        return f"{self.prefix}:user_call:{user_id}"

    def payment_reconcile_lease(self) -> str:
        """Held by the node reconciling unanswered payments this round (``RedisLease``)."""
        return f"{self.prefix}:payment_reconcile_lease"

    def attachment_sweep_lease(self) -> str:
        """Held by the node sweeping attachments this round (``RedisLease``)."""
        return f"{self.prefix}:attachment_sweep_lease"

    def push_stream(self) -> str:
        """STREAM of push jobs (field ``j``), read by every node through one consumer group;
        an entry is deleted once handled, so its length is the queue's depth."""
        return f"{self.prefix}:push:stream"

    def push_delayed(self) -> str:
        """ZSET of push jobs waiting for their time (retries, a burst's last push): member
        job id, score due ms; the jobs themselves are in ``push_delayed_jobs``."""
        return f"{self.prefix}:push:delayed"

    def push_delayed_jobs(self) -> str:
        return f"{self.prefix}:push:delayed_jobs"

    def push_delayed_order(self) -> str:
        """HASH job id -> the order (recipient seq) of a burst's last push as scheduled, so
        a burst's older job handled late does not replace a newer one."""
        return f"{self.prefix}:push:delayed_order"

    def push_window(self, user_id: str, device_id: str, conversation_id: str) -> str:
        """Set while a message push to this device for this conversation is recent (TTL:
        ``PUSH_COALESCE_MS``): a burst waits for its end."""
        return f"{self.prefix}:push:window:{user_id}:{device_id}:{conversation_id}"

    def push_call_devices(self, call_id: str) -> str:
        """SET of ``user|device`` that got this call's VoIP/FCM push (for ``call_ended``)."""
        return f"{self.prefix}:push:call:{call_id}"

    def push_call_over(self, call_id: str) -> str:
        """Set once the call stopped ringing: a call push still queued is dropped."""
        return f"{self.prefix}:push:call_over:{call_id}"

    def push_audience_channel(self) -> str:
        """Pub/sub channel every node listens to: ids of users who just registered a push
        token (``hub/push/audience.py``)."""
        return f"{self.prefix}:push:audience"

    def push_message_devices(self, message_id: str) -> str:
        """SET of ``user|device|conversation`` that got an alert for this message (for the
        withdrawal push when it is deleted), with a TTL."""
        return f"{self.prefix}:push:message:{message_id}"
