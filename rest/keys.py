"""Typed application state shared by the REST routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hub.rate_limits import SharedLimiter, WindowLimit
from hub.services import Services

SERVICES = web.AppKey("services", Services)
API_LIMITER = web.AppKey("api_limiter", SharedLimiter)
# None when API_RATE_LIMIT=off.
API_LIMIT: web.AppKey[WindowLimit | None] = web.AppKey("api_limit")
# The OpenAPI document of every REST route, built once by build_app (rest/spec.py).
OPENAPI_DOCUMENT: web.AppKey[dict[str, Any]] = web.AppKey("openapi_document")
HealthCheck = Callable[[], Awaitable[dict[str, bool]]]
HEALTH_CHECK: web.AppKey[HealthCheck] = web.AppKey("health_check")
# Origins allowed by CORS (HUB_CORS_ORIGINS), for the security-headers middleware.
CORS_ORIGINS: web.AppKey[tuple[str, ...]] = web.AppKey("cors_origins")
# TRUSTED_PROXIES as networks: whose X-Forwarded-For names the client (rest/http.py).
TRUSTED_PROXIES: web.AppKey[tuple[Any, ...]] = web.AppKey("trusted_proxies")
