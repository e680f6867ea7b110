"""bcrypt password hashing, always off the event loop so a login never stalls sockets."""

from __future__ import annotations

import asyncio

import bcrypt

# bcrypt reads at most 72 bytes; longer passwords are refused at validation instead.
MAX_PASSWORD_BYTES = 72


class PasswordHasher:
    def __init__(self, rounds: int) -> None:
        self._rounds = rounds
        self._decoy = bcrypt.hashpw(b"decoy-password", bcrypt.gensalt(rounds))

    async def hash(self, password: str) -> str:
        def work() -> str:
            return bcrypt.hashpw(password.encode(), bcrypt.gensalt(self._rounds)).decode()

        return await asyncio.to_thread(work)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Constant work whether or not the account exists (no user enumeration by timing)."""
        stored = password_hash.encode() if password_hash else self._decoy
        raw = password.encode()
        # No stored password is longer than bcrypt reads; a longer attempt still costs the
        # same bcrypt (on its first 72 bytes) and then fails, instead of raising.
        too_long = len(raw) > MAX_PASSWORD_BYTES

        def work() -> bool:
            return bcrypt.checkpw(raw[:MAX_PASSWORD_BYTES], stored)

        ok = await asyncio.to_thread(work)
        return ok and not too_long and password_hash is not None
