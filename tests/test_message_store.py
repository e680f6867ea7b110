"""``MessageStore`` against a real PostgreSQL: what one query reads and returns."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from storage.sql.message_lifecycle import MessageLifecycleStore
from storage.sql.message_rows import COPY_COLUMNS, CopyToStore, NewMessage, OriginalDeleted
from storage.sql.messages import SELECT_COPIES_AFTER_BOUNDED, MessageStore
from tests.support.servers import TestEnv

KIB = 1024


@pytest_asyncio.fixture
async def pool(test_env: TestEnv) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(test_env.database_url, min_size=1, max_size=2)
    try:
        yield created
    finally:
        await created.close()


async def new_user(pool: asyncpg.Pool) -> str:
    user_id = str(uuid.uuid4())
    await pool.execute(
        "INSERT INTO users (id, email, password_hash, name) VALUES ($1, $2, 'x', 'u')",
        user_id,
        f"{user_id}@example.test",
    )
    await pool.execute("INSERT INTO user_seqs (user_id) VALUES ($1)", user_id)
    return user_id


async def send_sizes(store: MessageStore, sender: str, to: str, sizes: list[int]) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in sizes]
    await store.insert_batch(
        [
            NewMessage(
                id=message_id,
                sender_id=sender,
                sender_device="d",
                recipient_id=to,
                band_id=None,
                ts=1,
                copies=[CopyToStore(to, sender, bytes([i % 251]) * size, b"n" * 24)],
            )
            for i, (message_id, size) in enumerate(zip(ids, sizes, strict=True))
        ]
    )
    return ids


async def test_a_sync_page_stops_at_its_byte_bound(pool):
    store = MessageStore(pool)
    alice, bob = await new_user(pool), await new_user(pool)
    ids = await send_sizes(store, alice, bob, [300 * KIB] * 10)
    copies, more = await store.copies_after(bob, 0, 500, 1024 * KIB)
    assert [c.message_id for c in copies] == ids[:3] and more is True
    assert sum(len(c.ciphertext) for c in copies) <= 1024 * KIB
    assert [len(c.ciphertext) for c in copies] == [300 * KIB] * 3
    assert copies[1].ciphertext == bytes([1]) * 300 * KIB
    # The next page goes on from there, and the last page says there is no more.
    copies, more = await store.copies_after(bob, copies[-1].seq, 500, 1024 * KIB)
    assert [c.message_id for c in copies] == ids[3:6] and more is True
    copies, more = await store.copies_after(bob, 9, 500, 1024 * KIB)
    assert [c.message_id for c in copies] == ids[9:] and more is False


async def test_a_copy_exactly_at_the_bound_is_kept_and_one_past_it_is_not(pool):
    store = MessageStore(pool)
    alice, bob = await new_user(pool), await new_user(pool)
    ids = await send_sizes(store, alice, bob, [600, 400, 1])
    copies, more = await store.copies_after(bob, 0, 500, 1000)
    assert [c.message_id for c in copies] == ids[:2] and more is True
    copies, more = await store.copies_after(bob, 0, 500, 999)
    assert [c.message_id for c in copies] == ids[:1] and more is True


async def test_a_copy_larger_than_the_bound_comes_alone(pool):
    store = MessageStore(pool)
    alice, bob = await new_user(pool), await new_user(pool)
    ids = await send_sizes(store, alice, bob, [2048 * KIB, 10])
    copies, more = await store.copies_after(bob, 0, 500, 1024 * KIB)
    assert [c.message_id for c in copies] == ids[:1] and more is True
    assert len(copies[0].ciphertext) == 2048 * KIB


async def test_a_sync_page_stops_at_its_row_limit_and_an_empty_one_has_no_more(pool):
    store = MessageStore(pool)
    alice, bob = await new_user(pool), await new_user(pool)
    ids = await send_sizes(store, alice, bob, [10] * 5)
    copies, more = await store.copies_after(bob, 0, 5, 1024 * KIB)
    assert [c.message_id for c in copies] == ids and more is False
    copies, more = await store.copies_after(bob, 0, 4, 1024 * KIB)
    assert [c.message_id for c in copies] == ids[:4] and more is True
    assert await store.copies_after(bob, 5, 4, 1024 * KIB) == ([], False)
    assert await store.copies_after(alice, 0, 4, 1024 * KIB) == ([], False)


async def toast_blocks_read_by(conn: asyncpg.Connection, query: str, *args: object) -> int:
    """Blocks of the inbox's TOAST table (where large ciphertexts live) that ``query`` read,
    counted by PostgreSQL for the current transaction."""
    # These counters hold what this backend has not yet reported: compare before and after.
    counter = (
        "SELECT pg_stat_get_xact_blocks_fetched(reltoastrelid) FROM pg_class"
        " WHERE relname = 'inbox'"
    )
    async with conn.transaction():
        before = await conn.fetchval(counter)
        await conn.fetch(query, *args)
        blocks = await conn.fetchval(counter) - before
    return int(blocks)


async def test_a_sync_page_does_not_read_the_bodies_past_its_bound(pool):
    store = MessageStore(pool)
    alice, bob = await new_user(pool), await new_user(pool)
    sizes = [200 * KIB] * 20
    await store.insert_batch(
        [
            NewMessage(
                str(uuid.uuid4()),
                alice,
                "d",
                bob,
                None,
                1,
                [CopyToStore(bob, alice, os.urandom(size), b"n" * 24)],
            )
            for size in sizes
        ]
    )
    page_blocks = 1024 * KIB // (8 * KIB)  # what the bodies of one 1 MiB page take
    async with pool.acquire() as conn:
        everything = await toast_blocks_read_by(
            conn, f"SELECT {COPY_COLUMNS} FROM inbox WHERE user_id = $1 ORDER BY seq", bob
        )
        bounded = await toast_blocks_read_by(
            conn, SELECT_COPIES_AFTER_BOUNDED, bob, 0, 500, 1024 * KIB
        )
    assert everything > 3 * page_blocks  # the measure sees bodies being read
    assert bounded <= 1.25 * page_blocks, (bounded, everything)


async def test_an_edit_of_a_message_deleted_meanwhile_is_not_stored(pool):
    store, lifecycle = MessageStore(pool), MessageLifecycleStore(pool)
    alice, bob = await new_user(pool), await new_user(pool)
    [original] = await send_sizes(store, alice, bob, [32])
    assert [
        t.user_id
        for t in await lifecycle.delete_for_everyone(original, alice, "d", str(uuid.uuid4()), 2)
    ] == [bob]
    edit = NewMessage(
        str(uuid.uuid4()),
        alice,
        "d",
        bob,
        None,
        3,
        [CopyToStore(bob, alice, b"e" * 32, b"n" * 24)],
        relates_type="edit",
        relates_to=original,
    )
    with pytest.raises(OriginalDeleted):
        await store.insert_batch([edit])
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", edit.id) == 0
    # Deleting again changes nothing.
    assert await lifecycle.delete_for_everyone(original, alice, "d", str(uuid.uuid4()), 4) == []
