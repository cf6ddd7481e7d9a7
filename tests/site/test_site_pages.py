"""The public site: landing, directory (with HTMX fragments), tutor page, SEO and PWA files."""

from __future__ import annotations

import httpx

from tests.scheduling.conftest import Market, approved_tutor, market  # noqa: F401

HTML = {"accept": "text/html"}
WEEKDAYS = [{"weekday": d, "start": "08:00", "end": "20:00"} for d in range(7)]


async def test_landing_shows_featured_tutors_subjects_and_plans(
    app, client: httpx.AsyncClient, market: Market
) -> None:
    await approved_tutor(app, client, market, rules=WEEKDAYS, name="Grace Hopper")
    page = await client.get("/", headers=HTML)
    assert page.status_code == 200
    assert "Grace Hopper" in page.text
    assert "Mathematics" in page.text and "Languages" in page.text
    assert "€100.00" in page.text  # the 4-lessons-a-month plan, formatted by Babel
    assert '<meta property="og:title"' in page.text
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page.text
    assert "<script>" not in page.text and "style=" not in page.text
    assert len(page.content) < 200_000


async def test_directory_filters_full_page_and_htmx_fragment(
    app, client: httpx.AsyncClient, market: Market
) -> None:
    await approved_tutor(app, client, market, rules=WEEKDAYS, name="Grace Hopper")
    await approved_tutor(app, client, market, rules=WEEKDAYS, name="Marie Curie",
                         headline="French conversation",
                         subjects=[{"subject_id": market.subjects["languages/french"],
                                    "level": "adult"}])
    full = await client.get("/tutors", headers=HTML)
    assert full.status_code == 200
    assert "Grace Hopper" in full.text and "Marie Curie" in full.text
    assert '<form class="filters' in full.text
    fragment = await client.get("/tutors", params={"subject": "languages"},
                                headers={**HTML, "HX-Request": "true"})
    assert fragment.status_code == 200
    assert "Marie Curie" in fragment.text and "Grace Hopper" not in fragment.text
    assert "<html" not in fragment.text
    # one credit a lesson with every tutor: no hourly rates to filter or show
    assert 'name="max_price"' not in full.text and "/ hour" not in full.text
    assert "1 credit" in fragment.text


async def test_tutor_page_names_the_zone_and_links_slots(
    app, client: httpx.AsyncClient, market: Market
) -> None:
    _, tutor_id = await approved_tutor(app, client, market, rules=WEEKDAYS, name="Grace Hopper")
    page = await client.get(f"/tutors/{tutor_id}", params={"tz": "Asia/Tokyo"}, headers=HTML)
    assert page.status_code == 200
    assert "Times are shown in <strong data-time-zone-label>Asia/Tokyo</strong>" in page.text
    assert f"/app/book/{tutor_id}?start=" in page.text
    assert "%2B09%3A00" in page.text  # slot starts carry the viewer's offset
    fragment = await client.get(f"/tutors/{tutor_id}/slots", params={"tz": "Asia/Tokyo"},
                                headers={**HTML, "HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    missing = await client.get("/tutors/00000000-0000-0000-0000-000000000000", headers=HTML)
    assert missing.status_code == 404


async def test_sitemap_robots_manifest_service_worker(
    app, client: httpx.AsyncClient, market: Market
) -> None:
    _, tutor_id = await approved_tutor(app, client, market, rules=WEEKDAYS)
    sitemap = await client.get("/sitemap.xml")
    assert sitemap.status_code == 200
    assert sitemap.headers["content-type"].startswith("application/xml")
    assert f"/tutors/{tutor_id}</loc>" in sitemap.text
    robots = await client.get("/robots.txt")
    assert "Disallow: /app" in robots.text and "Sitemap: " in robots.text
    manifest = (await client.get("/manifest.webmanifest")).json()
    assert {i["sizes"] for i in manifest["icons"]} >= {"192x192", "512x512"}
    assert any(i.get("purpose") == "maskable" for i in manifest["icons"])
    for icon in manifest["icons"]:
        assert (await client.get(icon["src"])).status_code == 200
    worker = await client.get("/sw.js")
    assert worker.status_code == 200
    assert worker.headers["content-type"].startswith("application/javascript")
    assert worker.headers["service-worker-allowed"] == "/"
    assert "/offline" in worker.text
    assert (await client.get("/offline", headers=HTML)).status_code == 200


async def test_mobile_config_reports_versions(app, client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/mobile/config")).json()
    assert body["min_supported_version"] == "1.0.0"
    assert body["latest_version"] == "1.0.0"
    assert body["api_base"].endswith("/api/v1")
    spec = (await client.get("/api/openapi.json")).json()
    assert "/api/v1/mobile/config" in spec["paths"]
