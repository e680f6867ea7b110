"""The embedded blob store: one file per attachment under a folder of this machine.

An upload streams to a temporary file in the same folder and becomes visible only once it
holds exactly the declared number of bytes (a hard link: atomic, and it never replaces an
upload already there), so a reader never sees half a file and a short or long upload leaves
nothing behind. Nodes sharing the folder (one machine, or a shared volume) share the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path


class WrongLength(Exception):
    """The upload did not hold exactly the declared number of bytes; nothing was kept."""


class AlreadyUploaded(Exception):
    """An upload is written once; this one is there already."""


class BlobFiles:
    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def open_folder(self) -> None:
        self._folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path_of(self, key: str) -> Path:
        """``key`` is an attachment id (a UUID, checked by the caller)."""
        return self._folder / key

    async def write_exactly(self, key: str, size: int, chunks: AsyncIterator[bytes]) -> None:
        """Store ``chunks`` under ``key`` if they hold exactly ``size`` bytes; stops reading
        as soon as they hold more. Raises ``WrongLength`` or ``AlreadyUploaded``."""
        final = self.path_of(key)
        if final.exists():
            raise AlreadyUploaded
        temporary = self._folder / f".{key}.{uuid.uuid4().hex}.part"
        handle = await asyncio.to_thread(open, temporary, "xb")
        try:
            received = 0
            async for chunk in chunks:
                received += len(chunk)
                if received > size:
                    raise WrongLength
                await asyncio.to_thread(handle.write, chunk)
            if received != size:
                raise WrongLength
            await asyncio.to_thread(handle.flush)
            await asyncio.to_thread(os.fsync, handle.fileno())
            handle.close()
            try:
                await asyncio.to_thread(os.link, temporary, final)
            except FileExistsError:
                raise AlreadyUploaded from None
        finally:
            handle.close()
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(os.unlink, temporary)

    async def size_of(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(os.stat, self.path_of(key))).st_size
        except FileNotFoundError:
            return None

    async def delete(self, keys: list[str]) -> None:
        """Remove the files; one already gone is fine (the sweep may run again)."""
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(os.unlink, self.path_of(key))
