"""Driver failures stop here: a store whose server did not answer raises ``StorageUnavailable``.

Services and transports above ``storage/`` must not know asyncpg or redis-py; what they must
know is that nothing was stored and the client should retry (socket ``unavailable``, REST
503). ``translates_failures`` wraps every public coroutine method of a store class so that
the connection-level errors of either driver leave it as that one exception; errors that
mean something (a unique violation a store turns into a rule, say) are untouched.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import asyncpg
import redis.exceptions

Store = TypeVar("Store", bound=type[Any])
Params = ParamSpec("Params")
Result = TypeVar("Result")

DRIVER_FAILURES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
    OSError,  # refused, unreachable, reset: the server's socket, never a rule
)


class StorageUnavailable(Exception):
    """PostgreSQL or Redis did not answer: nothing was stored, the caller may retry."""


def _guarded(
    method: Callable[Params, Awaitable[Result]],
) -> Callable[Params, Awaitable[Result]]:
    @functools.wraps(method)
    async def guarded(*args: Params.args, **kwargs: Params.kwargs) -> Result:
        try:
            return await method(*args, **kwargs)
        except DRIVER_FAILURES as exc:
            raise StorageUnavailable(f"{method.__qualname__}: {type(exc).__name__}") from exc

    return guarded


def translates_failures(cls: Store) -> Store:
    """Class decorator for a store: its public coroutine methods raise only
    ``StorageUnavailable`` for a server that did not answer."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(member):
            setattr(cls, name, _guarded(member))
    return cls
