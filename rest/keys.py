"""Typed application state shared by the REST routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from hub.rate_limits import SharedLimiter, WindowLimit
from hub.services import Services

SERVICES = web.AppKey("services", Services)
API_LIMITER = web.AppKey("api_limiter", SharedLimiter)
API_LIMIT = web.AppKey("api_limit", WindowLimit)
HealthCheck = Callable[[], Awaitable[dict[str, bool]]]
HEALTH_CHECK: web.AppKey[HealthCheck] = web.AppKey("health_check")
