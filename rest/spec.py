"""Routes that document themselves, and the OpenAPI document built from them.

Each REST module declares its routes on an ``ApiRoutes`` table, and every route says what it
is where it is declared::

    routes = ApiRoutes("bands")

    @routes.post("/api/bands", summary="Create a band", body=CreateBand, answer=BandView,
                 status=201)
    async def create_band(request: web.Request) -> web.Response: ...

``build_app`` hands all the tables to ``openapi_document``; the pydantic models become the
document's schemas (``model_json_schema``), so the document cannot drift from what the routes
parse. **Adding routes** (payments, calls…): use an ``ApiRoutes`` table, give each route a
``summary`` and its ``body``/``query``/``answer`` models (``headers`` for request headers such
as ``Idempotency-Key``), and add the table to ``REST_TABLES`` in ``hub/app.py``. A route
declared without a summary fails at import, and ``tests/test_openapi.py`` fails when a
registered route is missing from the document.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from rest.http import current_user, read_body, read_query

log = logging.getLogger(__name__)

RouteHandler = TypeVar("RouteHandler", bound=Callable[..., Awaitable[web.StreamResponse]])


class RouteDecorator(Protocol):
    """What ``routes.get(...)`` returns: it gives back the handler it was given."""

    def __call__(self, handler: RouteHandler, /) -> RouteHandler: ...


REF_TEMPLATE = "#/components/schemas/{model}"
AIOHTTP_ROUTE_OPTIONS = frozenset({"name", "expect_handler", "allow_head"})
_PATH_PARAMETER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Operation:
    """One documented route. ``answer`` is the success body's model (None: no JSON body, or
    the media type named by ``media_type``)."""

    method: str
    path: str
    tag: str
    summary: str
    description: str | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    answer: type[BaseModel] | None = None
    status: int = 200
    media_type: str | None = "application/json"
    auth: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)


class ApiRoutes(web.RouteTableDef):
    """A ``RouteTableDef`` whose routes also declare their OpenAPI operation (see the module
    docstring for the keywords)."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag
        self.operations: list[Operation] = []

    def route(self, method: str, path: str, **kwargs: Any) -> Any:
        documented = {k: kwargs.pop(k) for k in list(kwargs) if k not in AIOHTTP_ROUTE_OPTIONS}
        if "summary" not in documented:
            raise TypeError(f"{method} {path}: every route needs summary= (and its models)")
        operation = Operation(method=method, path=path, tag=self.tag, **documented)
        self.operations.append(operation)
        register: Callable[[Any], Any] = super().route(method, path, **kwargs)
        return lambda handler: register(parsing(operation, handler))

    # Handlers may take ``body`` / ``query`` beyond aiohttp's ``(request)``: typed here as
    # what ``route`` accepts, so mypy holds each handler's models to its declaration.
    def get(self, path: str, **kwargs: Any) -> RouteDecorator:
        return self.route("GET", path, **kwargs)  # type: ignore[no-any-return]

    def post(self, path: str, **kwargs: Any) -> RouteDecorator:
        return self.route("POST", path, **kwargs)  # type: ignore[no-any-return]

    def put(self, path: str, **kwargs: Any) -> RouteDecorator:
        return self.route("PUT", path, **kwargs)  # type: ignore[no-any-return]

    def patch(self, path: str, **kwargs: Any) -> RouteDecorator:
        return self.route("PATCH", path, **kwargs)  # type: ignore[no-any-return]

    def delete(self, path: str, **kwargs: Any) -> RouteDecorator:
        return self.route("DELETE", path, **kwargs)  # type: ignore[no-any-return]


def parsing(operation: Operation, handler: Callable[..., Any]) -> Callable[..., Any]:
    """The route's declared ``body`` and ``query`` models, parsed once and handed to the
    handler as its ``body`` / ``query`` parameters, so a model is named in one place. A route
    that needs authentication checks the token first: a stranger's malformed body is 401,
    never a 400 that would tell them what the route expects."""
    wanted = inspect.signature(handler).parameters
    body_model = operation.body if "body" in wanted else None
    query_model = operation.query if "query" in wanted else None
    if body_model is None and query_model is None:
        return handler

    @functools.wraps(handler)
    async def parsed(request: web.Request) -> web.StreamResponse:
        if operation.auth:
            current_user(request)
        parts: dict[str, BaseModel] = {}
        if query_model is not None:
            parts["query"] = read_query(request, query_model)
        if body_model is not None:
            parts["body"] = await read_body(request, body_model)
        response: web.StreamResponse = await handler(request, **parts)
        return response

    return parsed


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "object"},
                    "retryable": {"type": "boolean"},
                },
            }
        },
    }


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"}
            if name.endswith("_id")
            else {"type": "string"},
        }
        for name in _PATH_PARAMETER.findall(path)
    ]


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF_TEMPLATE, mode="validation")
    required = set(schema.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _header_parameters(headers: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in headers.items()
    ]


def _undeclared(
    operations: list[Operation], registered: Iterable[web.AbstractRoute]
) -> list[Operation]:
    """Routes added from a plain ``RouteTableDef``: listed with their path and parameters
    only (``x-undeclared``), so the document still names every route the hub serves."""
    declared = {(op.method, op.path) for op in operations}
    extra: list[Operation] = []
    for route in registered:
        path = route.resource.canonical if route.resource is not None else ""
        if (
            route.method in ("HEAD", "*")
            or not path.startswith("/")
            or path.startswith("/socket.io")
        ):
            continue
        if (route.method, path) not in declared:
            declared.add((route.method, path))
            extra.append(
                Operation(route.method, path, "undeclared", "(not declared on ApiRoutes yet)")
            )
    if extra:
        log.warning(
            "REST routes not declared on an ApiRoutes table (no schemas in the OpenAPI "
            "document): %s",
            ", ".join(f"{op.method} {op.path}" for op in extra),
        )
    return extra


def openapi_document(
    tables: Iterable[web.RouteTableDef],
    registered: Iterable[web.AbstractRoute],
    *,
    title: str,
    version: str,
) -> dict[str, Any]:
    """OpenAPI 3.1 for every operation declared on the ``ApiRoutes`` among ``tables``, and a
    bare entry for any other ``registered`` route (see ``_undeclared``)."""
    operations = [op for table in tables for op in getattr(table, "operations", ())]
    undeclared = _undeclared(operations, registered)
    operations += undeclared
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for op in operations:
        if op.body is not None:
            wanted.append((op.body, "validation"))
        if op.answer is not None:
            wanted.append((op.answer, "serialization"))
    wanted = list(dict.fromkeys(wanted))
    refs, top = models_json_schema(wanted, ref_template=REF_TEMPLATE) if wanted else ({}, {})
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas["Error"] = _error_schema()
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        parameters = _path_parameters(op.path) + _header_parameters(op.headers)
        if op.query is not None:
            parameters += _query_parameters(op.query)
        success: dict[str, Any] = {"description": op.summary}
        if op.media_type is not None:
            schema = (
                refs[(op.answer, "serialization")]
                if op.answer is not None
                else ({"type": "string"} if op.media_type != "application/json" else {})
            )
            success["content"] = {op.media_type: {"schema": schema}}
        operation: dict[str, Any] = {
            "operationId": f"{op.method.lower()}_{_operation_slug(op.path)}",
            "tags": [op.tag],
            "summary": op.summary,
            "security": [{"bearer": []}] if op.auth else [],
            "responses": {
                str(op.status): success,
                "default": {
                    "description": "an error: {error: {code, message, details?}}",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
        if op.description:
            operation["description"] = op.description
        if op in undeclared:
            operation["x-undeclared"] = True
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = {
                "required": any(f.is_required() for f in op.body.model_fields.values()),
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation_slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.removeprefix("/api/").lower()).strip("_")
