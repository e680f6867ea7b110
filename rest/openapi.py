"""``GET /api/openapi.json``: the OpenAPI 3.1 document of every REST route (``rest/spec.py``)."""

from __future__ import annotations

from aiohttp import web

from rest.http import json_response
from rest.keys import OPENAPI_DOCUMENT
from rest.spec import ApiRoutes

routes = ApiRoutes("meta")


@routes.get("/api/openapi.json", summary="This document", auth=False)
async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI_DOCUMENT])
