"""Real NaCl boxes, as the app makes them (TweetNaCl ``box``: X25519 + XSalsa20-Poly1305).

The plaintext carries the message id and the send time (``time.monotonic_ns()``, one clock for
every process on the machine), so the receiving side measures end-to-end latency from the
bytes it decrypts, and a box that opens with the wrong id counts as corrupted.
"""

from __future__ import annotations

import base64
import math
import os
import random
from dataclasses import dataclass

import nacl.public

MIN_PLAINTEXT = 60
MAX_PLAINTEXT = 600
_FILLER = (
    "Hey! Are we still on for the rehearsal tonight? I can bring the new set list and the "
    "extra cables. Let me know if the studio changed the booking, and whether Sam is coming "
) * 8


def plaintext_size(rng: random.Random) -> int:
    """Log-uniform between 60 and 600 bytes: mostly short chat lines, some long ones."""
    return int(math.exp(rng.uniform(math.log(MIN_PLAINTEXT), math.log(MAX_PLAINTEXT))))


@dataclass
class KeyPair:
    secret: nacl.public.PrivateKey

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(nacl.public.PrivateKey.generate())

    @property
    def public_b64(self) -> str:
        return base64.b64encode(bytes(self.secret.public_key)).decode()


class Channel:
    """One side's view of a conversation: the precomputed box with the peer."""

    __slots__ = ("_box",)

    def __init__(self, mine: KeyPair, peer_public_b64: str) -> None:
        peer = nacl.public.PublicKey(base64.b64decode(peer_public_b64))
        self._box = nacl.public.Box(mine.secret, peer)

    def seal(self, message_id: str, sent_ns: int, size: int) -> tuple[str, str]:
        head = f"{message_id}|{sent_ns}|"
        body = (head + _FILLER[: max(0, size - len(head))]).encode()
        nonce = os.urandom(24)
        ciphertext = self._box.encrypt(body, nonce).ciphertext
        return base64.b64encode(ciphertext).decode(), base64.b64encode(nonce).decode()

    def open(self, ciphertext_b64: str, nonce_b64: str) -> tuple[str, int]:
        """(message id, send time ns) from the decrypted plaintext; raises if forged."""
        plain = self._box.decrypt(base64.b64decode(ciphertext_b64), base64.b64decode(nonce_b64))
        message_id, sent, _ = plain.split(b"|", 2)
        return message_id.decode(), int(sent)
