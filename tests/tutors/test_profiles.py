"""Catalogue and the tutor profile workflow, through HTTP."""

from __future__ import annotations

from tests.scheduling.conftest import Market, profile_body, sign_in
from tutorapp.auth.roles import Role


async def test_catalogue_is_admin_managed_and_public_to_read(app, client, market: Market) -> None:
    student = await sign_in(app, role=Role.student)
    response = await client.post("/api/v1/catalogue/subjects",
                                 json={"name": "X", "slug": "x"}, headers=student.headers)
    assert response.status_code == 403
    subjects = (await client.get("/api/v1/catalogue/subjects")).json()
    assert [s["path"] for s in subjects] == [
        "languages", "languages/french", "mathematics", "mathematics/algebra",
        "mathematics/algebra/linear", "mathematics/geometry",
    ]
    assert (await client.get("/api/v1/catalogue/levels")).json() == [
        "primary", "secondary", "university", "adult"]
    assert [lang["code"] for lang in (await client.get("/api/v1/catalogue/languages")).json()] == [
        "de", "en", "fr"]
    duplicate = await client.post("/api/v1/catalogue/subjects",
                                  json={"name": "Algebra", "slug": "algebra",
                                        "parent_id": market.subjects["mathematics"]},
                                  headers=market.admin.headers)
    assert duplicate.status_code == 409


async def test_draft_submit_reject_resubmit_approve(app, client, market: Market) -> None:
    tutor = await sign_in(app, role=Role.tutor, name="Grace")
    body = profile_body(market, bio_markdown="Hi <script>alert(1)</script> [x](javascript:alert(1)) **bold**")
    response = await client.put("/api/v1/tutors/me", json=body, headers=tutor.headers)
    assert response.status_code == 200, response.text
    profile = response.json()
    tutor_id = profile["id"]
    assert profile["status"] == "draft"
    assert profile["display_name"] == "Grace"
    assert profile["bio_html"] == (
        "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt; [x](javascript:alert(1)) "
        "<strong>bold</strong></p>\n"
    )
    assert "<strong>bold</strong>" in profile["bio_html"]
    assert "hourly_rate" not in profile  # a lesson costs one credit with any tutor
    assert profile["subjects"][0]["path"] == "mathematics/algebra"

    # drafts are not public
    assert (await client.get(f"/api/v1/tutors/{tutor_id}")).status_code == 404
    assert (await client.post("/api/v1/tutors/me/submit", headers=tutor.headers)).json()["status"] == "submitted"
    queue = await client.get("/api/v1/admin/tutors", headers=market.admin.headers)
    assert [p["id"] for p in queue.json()] == [tutor_id]

    rejected = await client.post(f"/api/v1/admin/tutors/{tutor_id}/reject",
                                 json={"reason": "Add a photo"}, headers=market.admin.headers)
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["rejection_reason"] == "Add a photo"
    assert (await client.get(f"/api/v1/tutors/{tutor_id}")).status_code == 404

    body["photo_ref"] = "photos/grace.jpg"
    edited = await client.put("/api/v1/tutors/me", json=body, headers=tutor.headers)
    assert edited.json()["status"] == "draft"
    await client.post("/api/v1/tutors/me/submit", headers=tutor.headers)
    approved = await client.post(f"/api/v1/admin/tutors/{tutor_id}/approve",
                                 headers=market.admin.headers)
    assert approved.json()["status"] == "approved"
    public = await client.get(f"/api/v1/tutors/{tutor_id}")
    assert public.status_code == 200
    assert public.json()["photo_ref"] == "photos/grace.jpg"
    assert "status" not in public.json() and "meeting_link" not in public.json()
    again = await client.post(f"/api/v1/admin/tutors/{tutor_id}/approve", headers=market.admin.headers)
    assert again.status_code == 409


async def test_profile_input_is_validated(app, client, market: Market) -> None:
    tutor = await sign_in(app, role=Role.tutor)
    for field, value in [("time_zone", "Mars/Olympus"), ("lesson_lengths", [50]),
                         # tutors set no price: the fields are unknown now
                         ("hourly_rate_minor", 4000), ("currency", "EUR"),
                         ("meeting_link", "javascript:alert(1)")]:
        response = await client.put("/api/v1/tutors/me", json=profile_body(market, **{field: value}),
                                    headers=tutor.headers)
        assert response.status_code == 422, (field, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    unknown = await client.put("/api/v1/tutors/me", json=profile_body(market, languages=["xx"]),
                               headers=tutor.headers)
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "languages"
    student = await sign_in(app, role=Role.student)
    assert (await client.put("/api/v1/tutors/me", json=profile_body(market),
                             headers=student.headers)).status_code == 403
    empty = await sign_in(app, role=Role.tutor)
    await client.put("/api/v1/tutors/me", json=profile_body(market, headline="", subjects=[]),
                     headers=empty.headers)
    refused = await client.post("/api/v1/tutors/me/submit", headers=empty.headers)
    assert refused.status_code == 422
