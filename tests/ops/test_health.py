import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import make_settings
from tutorapp.app import create_app
from tutorapp.core.migrate import head_revisions


async def test_live_answers_without_touching_anything(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_database_reachable_and_at_head(
    client: httpx.AsyncClient, dialect: str
) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    checks = {c["component"]: c for c in response.json()["checks"]}
    assert checks["database"] == {"component": "database", "ok": True,
                                  "detail": f"{dialect} reachable"}
    assert checks["migrations"]["ok"] is True
    assert head_revisions()[0] in checks["migrations"]["detail"]


async def _get(app: FastAPI, path: str) -> httpx.Response:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.get(path)


async def test_not_ready_names_migrations_on_an_unmigrated_database(tmp_path) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'empty.db'}"))
    response = await _get(app, "/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["detail"] == "Failing: migrations."
    failing = [c for c in body["checks"] if not c["ok"]]
    assert [c["component"] for c in failing] == ["migrations"]
    assert "run `tutorapp migrate`" in failing[0]["detail"]


async def test_not_ready_names_the_database_when_unreachable() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    app = create_app(make_settings("postgresql://postgres@127.0.0.1:1/none"))
    response = await _get(app, "/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["detail"] == "Failing: database."
    assert body["checks"][0]["component"] == "database"
    assert body["checks"][0]["detail"].startswith("unreachable:")


async def test_meta_names_version_profile_and_backing_of_each_capability(
    client: httpx.AsyncClient, dialect: str
) -> None:
    from tutorapp import __version__

    response = await client.get("/api/v1/meta")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == __version__
    assert body["profile"] == "test"
    assert body["capabilities"]["database"] == dialect
    assert body["capabilities"]["cache"] == "memory"


@pytest.mark.parametrize("path", ["/health/live", "/api/v1/meta"])
async def test_probes_need_no_authentication(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200
