"""Every route declares who may call it, and answers accordingly to every kind of caller.

A route with no access rule fails here, so nothing is exposed by omission."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from tests.factories import make_user
from tutorapp.accounts import sessions
from tutorapp.accounts.models import User
from tutorapp.auth.deps import Access
from tutorapp.auth.roles import Role
from tutorapp.core.db import Database
from tutorapp.core.pages import FORM_COOKIE

CALLERS = ["anonymous", "student", "parent", "tutor", "admin"]
# Routes that authenticate the caller by a signature instead of a session.
SIGNED = re.compile(r"^/webhooks/")


def access_rule(route: APIRoute) -> Access | None:
    rules = []

    def walk(dependant) -> None:
        if isinstance(dependant.call, Access):
            rules.append(dependant.call)
        for sub in dependant.dependencies:
            walk(sub)

    walk(route.dependant)
    return rules[0] if rules else None


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every effective route, with the prefix and dependencies of its routers.

    Since FastAPI 0.16x `app.routes` keeps included routers unexpanded; its own
    (private) iterator expands them the way requests are matched."""
    from fastapi import routing

    expand = getattr(routing, "_iter_included_route_candidates", lambda routes: routes)
    routes = [r for r in expand(app.routes) if isinstance(r, APIRoute)]
    assert len(routes) > 30, "the route walk found too few routes: did FastAPI change?"
    return routes


def test_every_route_declares_an_access_rule(app: FastAPI) -> None:
    missing = [f"{sorted(r.methods)} {r.path}" for r in api_routes(app) if access_rule(r) is None]
    assert missing == []


def expected(rule: Access, caller: str, path: str) -> set[int] | None:
    """The statuses an access rule allows for a caller; None means 'anything but 401/403'."""
    if SIGNED.match(path):
        return {401}  # no valid signature, whoever calls
    if not rule.authenticated:
        return None
    if caller == "anonymous":
        return {401, 303}  # pages send browsers to the login page
    if rule.roles is not None and Role(caller) not in rule.roles:
        return {403}
    return None


async def fresh_token(db: Database, user: User) -> str:
    """A new aal2 session per request, so a logout or a revocation by one route
    cannot spoil the callers of the next."""
    async with db.unit_of_work() as session:
        tokens = await sessions.start_session(
            session, db.settings, await session.get(User, user.id), amr=["pwd", "totp"],
            aal="aal2", client=sessions.Client(ip="127.0.0.1", user_agent="matrix"),
        )
    return tokens.access_token


@pytest.mark.parametrize("caller", CALLERS)
async def test_route_by_role_matrix(app: FastAPI, client: httpx.AsyncClient, db: Database,
                                    caller: str) -> None:
    user = None
    if caller != "anonymous":
        user = (await make_user(db, role=Role(caller), totp=True)).user
    wrong = []
    for route in api_routes(app):
        rule = access_rule(route)
        assert rule is not None
        path = re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), route.path)
        for method in sorted(route.methods - {"HEAD"}):
            headers = {"accept": "application/json"}
            if user is not None:
                headers["Authorization"] = f"Bearer {await fresh_token(db, user)}"
            send: dict = {}
            if method in {"POST", "PUT", "PATCH", "DELETE"}:
                if route.path.startswith("/api/"):
                    send["json"] = {}
                else:  # a page's form, with its double-submit CSRF token
                    client.cookies.set(FORM_COOKIE, "matrix-token")
                    send["data"] = {"csrf_token": "matrix-token"}
            response = await client.request(method, path, headers=headers,
                                            follow_redirects=False, **send)
            allowed = expected(rule, caller, route.path)
            ok = (response.status_code not in (401, 403) if allowed is None
                  else response.status_code in allowed)
            if not ok or response.status_code >= 500:
                wrong.append(f"{method} {route.path}: {response.status_code}")
    assert wrong == []


async def test_the_openapi_document_declares_how_to_authenticate(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    spec = (await client.get("/api/openapi.json")).json()
    declared = {name: {k: v for k, v in scheme.items() if k != "description"}
                for name, scheme in spec["components"]["securitySchemes"].items()}
    assert declared == {
        "accessToken": {"type": "http", "scheme": "bearer"},
        "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "tutorapp_session"},
    }
    schemes = [{"accessToken": []}, {"sessionCookie": []}]
    for route in api_routes(app):
        rule = access_rule(route)
        if rule is None or not route.include_in_schema:
            continue
        for method in route.methods:
            operation = spec["paths"][route.path_format][method.lower()]
            # Anonymous callers are let in where the rule does not need a sign-in.
            optional = [{}] if not rule.authenticated else []
            assert operation["security"] == schemes + optional, (method, route.path_format)
    assert (await client.get("/api/docs")).status_code == 200
