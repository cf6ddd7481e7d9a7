import json
import re

import httpx
import pytest

from tests.conftest import make_settings
from tutorapp.app import create_app


async def request(settings_overrides: dict, method: str, path: str, *, database_url: str,
                  base_url: str = "http://testserver", **kwargs) -> httpx.Response:
    app = create_app(make_settings(database_url, **settings_overrides))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=transport, base_url=base_url
    ) as c:
        return await c.request(method, path, **kwargs)


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = await client.get("/health/live")
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    hostile = await client.get("/health/live", headers={"X-Request-ID": "a b\"<script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for path in ("/", "/health/live", "/api/v1/missing"):
        headers = (await client.get(path)).headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert re.search(r"script-src 'self' 'nonce-[\w-]{16,}'", csp)
        assert "unsafe-inline" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert "strict-transport-security" not in headers  # test profile: no HSTS


async def test_csp_lets_forms_reach_the_payment_providers_checkout(database_url: str) -> None:
    """"Buy" posts to us and is redirected to the hosted checkout: form-action must
    allow that origin, or the browser silently blocks the purchase."""
    from tests.conftest import LIVE_VENDORS

    live = await request(LIVE_VENDORS, "GET", "/", database_url=database_url)
    csp = live.headers["content-security-policy"]
    assert ("form-action 'self' https://tutorapp.example https://*.lemonsqueezy.com;"
            in csp)
    sandbox = await request({"port": 8811}, "GET", "/", database_url=database_url)
    assert "form-action 'self' http://127.0.0.1:8811;" in sandbox.headers[
        "content-security-policy"]


async def test_csp_nonce_differs_per_request(client: httpx.AsyncClient) -> None:
    first = (await client.get("/")).headers["content-security-policy"]
    second = (await client.get("/")).headers["content-security-policy"]
    assert first != second


async def test_staging_sends_hsts(database_url: str) -> None:
    from tests.conftest import LIVE_VENDORS

    response = await request({**LIVE_VENDORS, "profile": "staging"}, "GET", "/health/live",
                             database_url=database_url)
    assert response.headers["strict-transport-security"].startswith("max-age=63072000")


async def test_https_redirect_when_forced_but_not_for_health(database_url: str) -> None:
    response = await request({"force_https": True}, "GET", "/api/v1/meta?x=1",
                             database_url=database_url)
    assert response.status_code == 308
    assert response.headers["location"] == "https://testserver/api/v1/meta?x=1"
    health = await request({"force_https": True}, "GET", "/health/live",
                           database_url=database_url)
    assert health.status_code == 200
    secure = await request({"force_https": True}, "GET", "/api/v1/meta",
                           database_url=database_url, base_url="https://testserver")
    assert secure.status_code == 200


async def test_unknown_host_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"host": "evil.example"})
    assert response.status_code == 400


async def test_cors_allows_only_listed_origins_with_credentials(database_url: str) -> None:
    overrides = {"cors_origins": ["https://app.example"]}
    allowed = await request(overrides, "OPTIONS", "/api/v1/meta", database_url=database_url,
                            headers={"origin": "https://app.example",
                                     "access-control-request-method": "GET"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    refused = await request(overrides, "GET", "/api/v1/meta", database_url=database_url,
                            headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in refused.headers


async def test_wildcard_cors_in_dev_never_allows_credentials(database_url: str) -> None:
    response = await request({"cors_origins": ["*"]}, "GET", "/api/v1/meta",
                             database_url=database_url, headers={"origin": "https://x.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


async def test_one_json_log_line_per_request(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await request({"log_json": True}, "GET", "/api/v1/meta", database_url=database_url,
                  headers={"X-Request-ID": "log-me"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["event"] == "request"]
    assert len(access) == 1
    line = access[0]
    assert (line["method"], line["path"], line["status"], line["request_id"]) == (
        "GET", "/api/v1/meta", 200, "log-me")
    assert isinstance(line["duration_ms"], float)
