"""Bad input gets a problem+json 4xx, never a 500; a bug gets a 500 without a trace."""

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from tests.conftest import make_settings
from tutorapp.app import create_app
from tutorapp.core.errors import Conflict, InvalidInput

PROBLEM = "application/problem+json"


class Lesson(BaseModel):
    title: str
    minutes: int = Field(ge=15)
    tags: list[str] = []


probe = APIRouter(prefix="/api/v1/probe")


@probe.post("/lessons")
async def create_lesson(lesson: Lesson) -> Lesson:
    return lesson


@probe.get("/conflict")
async def conflict() -> None:
    raise Conflict("That slot was just taken.")


@probe.get("/field-rule")
async def field_rule() -> None:
    raise InvalidInput("time_zone", "unknown IANA time zone 'Mars/Olympus'")


@probe.get("/bug")
async def bug() -> None:
    raise RuntimeError("secret internals")


@pytest.fixture
async def http(app: FastAPI, client: httpx.AsyncClient) -> httpx.AsyncClient:
    app.include_router(probe)
    return client


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


async def test_malformed_json_is_a_400_problem(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/api/v1/probe/lessons", content=b'{"title": "Algebra",',
        headers={"content-type": "application/json"},
    )
    body = assert_problem(response, 400)
    assert body["type"] == "/problems/malformed-json"


async def test_wrong_type_lists_the_failing_field_paths(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/api/v1/probe/lessons", json={"title": 5, "minutes": "soon", "tags": ["ok", 7]}
    )
    body = assert_problem(response, 422)
    assert body["type"] == "/problems/validation-error"
    assert sorted(e["field"] for e in body["errors"]) == ["minutes", "tags[1]", "title"]
    assert {e["location"] for e in body["errors"]} == {"body"}


async def test_missing_field_is_named(http: httpx.AsyncClient) -> None:
    body = assert_problem(await http.post("/api/v1/probe/lessons", json={"title": "x"}), 422)
    assert [e["field"] for e in body["errors"]] == ["minutes"]
    assert body["errors"][0]["type"] == "missing"


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/api/v1/nothing-here"), 404)
    assert body["title"] == "Not Found"
    assert body["instance"] == "/api/v1/nothing-here"


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete("/health/live"), 405)


async def test_declared_too_large_body_is_a_413_problem(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    limit = app.state.settings.max_body_bytes
    response = await http.post(
        "/api/v1/probe/lessons", content=b"x" * (limit + 1),
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 413)


async def test_streamed_too_large_body_is_a_413_problem(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    limit = app.state.settings.max_body_bytes

    async def chunks():
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    response = await http.post(
        "/api/v1/probe/lessons", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


async def test_typed_errors_carry_their_status_and_type(http: httpx.AsyncClient) -> None:
    body = assert_problem(await http.get("/api/v1/probe/conflict"), 409)
    assert body["detail"] == "That slot was just taken."
    body = assert_problem(await http.get("/api/v1/probe/field-rule"), 422)
    assert body["errors"] == [{"field": "time_zone", "location": "body",
                               "message": "unknown IANA time zone 'Mars/Olympus'"}]


async def test_a_bug_is_a_500_with_request_id_and_no_stack_trace(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/api/v1/probe/bug", headers={"X-Request-ID": "req-123"})
    body = assert_problem(response, 500)
    assert body["request_id"] == "req-123"
    assert "req-123" in body["detail"]
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text


async def test_dev_profile_shows_the_trace(database_url: str) -> None:
    app = create_app(make_settings(database_url, profile="dev"))
    app.include_router(probe)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=transport, base_url="http://testserver"
    ) as c:
        response = await c.get("/api/v1/probe/bug")
    assert response.status_code == 500
    assert "RuntimeError: secret internals" in response.json()["detail"]


async def test_browsers_get_an_html_error_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/no-such-page", headers={"accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1 id=\"error-title\">Not Found</h1>" in response.text
