"""The OpenAPI document tells every status an operation can answer.

FastAPI documents the success and a 422 in its own format; our errors are RFC 9457
problem details (`core/errors.py`). `install(app)` rewrites the document once: every
error response is `application/problem+json` with the `Problem` schema, and each
operation lists the codes its declaration implies:

- 401 everywhere: a bearer token that is invalid or expired is refused on any route,
  and webhooks answer 401 to a bad signature;
- 403 where the access rule needs a role or a signed-in user, and for every
  state-changing method (a cookie caller without the CSRF token);
- 404 for operations with path parameters or a body (the id named may not exist)
  and for signed-in operations (the caller's own record, e.g. a tutor profile);
- 409 for state-changing methods (the state moved on: taken slot, replayed key);
- 400 and 413 for operations with a body (malformed JSON, too large);
- 422 for operations with parameters or a body, and state-changing ones (a
  service rule on the current state, e.g. a profile submitted incomplete);
- 429 for rate-limited operations (they depend on the rate limiter);
- 503 with `Retry-After` everywhere (a dependency is unavailable).

Every operation lists the two security schemes of `auth.deps` (bearer token,
session cookie): a bearer is read, and refused when invalid, on any route. Where
the access rule lets anonymous callers in, the list ends with `{}` (optional).

Routes add what their declaration cannot show with FastAPI's `responses=`.
`tests/test_openapi.py` runs schemathesis over the whole document and fails on
any status that is not listed, so the document stays true.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from tutorapp.core.deps import limiter_of
from tutorapp.core.errors import PROBLEM_JSON

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DESCRIPTIONS = {
    "400": "Malformed request (the body is not valid JSON)",
    "401": "Authentication required, or the token or signature is invalid",
    "403": "Forbidden: wrong role, second factor required, or CSRF check failed",
    "404": "Not found",
    "409": "Conflict with the current state",
    "413": "Request body too large",
    "422": "Invalid input: `errors` names each field",
    "429": "Too many requests: see Retry-After",
    "503": "A dependency is unavailable: see Retry-After",
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["field", "location", "message"],
            "properties": {"field": {"type": "string"}, "location": {"type": "string"},
                           "message": {"type": "string"}, "type": {"type": "string"}}}},
    },
    "additionalProperties": True,
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}


def _calls(dependant: Dependant) -> list[Any]:
    calls = []
    for sub in dependant.dependencies:
        calls.append(sub.call)
        calls.extend(_calls(sub))
    return calls


def _access_rules(calls: list[Any]) -> list[Any]:
    return [c for c in calls if hasattr(c, "authenticated") and hasattr(c, "roles")]


def needs_sign_in(route: APIRoute) -> bool:
    return any(c.authenticated for c in _access_rules(_calls(route.dependant)))


def codes_of(route: APIRoute) -> set[str]:
    """The error statuses `route`'s declaration implies (see the module docstring)."""
    dependant = route.dependant
    calls = _calls(dependant)
    access = _access_rules(calls)
    codes = {"401", "503"}
    unsafe = bool(UNSAFE & (route.methods or set()))
    if any(c.authenticated for c in access) or unsafe:
        codes.add("403")
    if dependant.path_params or dependant.body_params or any(c.authenticated for c in access):
        codes.add("404")  # the id in the path or body, or the caller's own record
    if unsafe:
        codes.add("409")
    if dependant.body_params:
        codes |= {"400", "413"}
    if unsafe or dependant.body_params or dependant.query_params or dependant.path_params \
            or dependant.header_params or _has_params(dependant):
        codes.add("422")  # a schema or a service rule on the input
    if limiter_of in calls:
        codes.add("429")
    return codes


def _has_params(dependant: Dependant) -> bool:
    return any(sub.query_params or sub.body_params or sub.header_params or _has_params(sub)
               for sub in dependant.dependencies)


def _problem(code: str, existing: dict[str, Any] | None) -> dict[str, Any]:
    if existing and "content" in existing and PROBLEM_JSON not in existing["content"] \
            and "application/json" in existing["content"] and code != "422":
        return existing  # a route documents its own body (readiness)
    response: dict[str, Any] = {
        "description": (existing or {}).get("description") or DESCRIPTIONS.get(code, "Error"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if code in ("429", "503"):
        response["headers"] = RETRY_AFTER
    return response


def install(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Rewrite `app`'s document; `routers` are those the app includes (without a
    prefix), whose routes carry their full path and dependencies."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = original()
        document.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        for schema_name in ("HTTPValidationError", "ValidationError"):
            document["components"]["schemas"].pop(schema_name, None)
        routes = {(r.path_format, m.lower()): r for router in routers for r in router.routes
                  if isinstance(r, APIRoute) and r.include_in_schema for m in r.methods or ()}
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                route = routes.get((path, method))
                if route is None:
                    continue
                if operation.get("security") and not needs_sign_in(route):
                    operation["security"] = [*operation["security"], {}]
                responses = operation.setdefault("responses", {})
                declared = {c for c in responses if c.startswith(("4", "5"))}
                for code in sorted(codes_of(route) | declared):
                    responses[code] = _problem(code, responses.get(code))
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
