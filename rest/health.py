"""``/healthz`` (200 only when PostgreSQL and Redis answer) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub.protocol.models import View
from rest.http import json_response
from rest.keys import HEALTH_CHECK, SERVICES
from rest.spec import ApiRoutes


class HealthView(View):
    status: Literal["ok", "degraded"]
    checks: dict[str, bool]


routes = ApiRoutes("operations")


@routes.get(
    "/healthz",
    summary="200 while PostgreSQL and Redis answer, else 503",
    answer=HealthView,
    auth=False,
)
async def healthz(request: web.Request) -> web.Response:
    checks = await request.app[HEALTH_CHECK]()
    healthy = all(checks.values())
    return json_response(
        {"status": "ok" if healthy else "degraded", "checks": checks}, 200 if healthy else 503
    )


@routes.get("/metrics", summary="Prometheus metrics", media_type="text/plain", auth=False)
async def metrics(request: web.Request) -> web.Response:
    registry = request.app[SERVICES].metrics.registry
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
