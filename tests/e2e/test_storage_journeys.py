"""Issue 11's journeys in a real browser, after test_journeys.py (same server): the
tutor uploads an avatar (shown in the navigation and on their public profile) and a
PDF for the lesson; the student downloads the PDF; a stranger gets 404 for it."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import Server, check_page
from tests.e2e.test_journeys import sign_in, sign_up, unique

pytestmark = pytest.mark.browser
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def _served(page, picture: str, kind: str = "image/webp") -> bytes:
    """The image a `<picture>` offers (its WebP source, or its PNG fallback), fetched
    as the browser would: the page names our avatar, not the default picture."""
    element = page.locator(picture).first
    url = (element.locator("source").get_attribute("srcset") if kind == "image/webp"
           else element.locator("img").get_attribute("src"))
    response = page.request.get(url)
    assert response.ok and response.headers["content-type"] == kind, (url, response.headers)
    return response.body()


def test_tutor_avatar_and_lesson_pdf_reach_the_student_only(
    pages, server: Server, tmp_path: Path
) -> None:
    assert "booking_path" in server.shared, "runs after test_journeys.py"
    picture = tmp_path / "me.jpg"
    Image.new("RGB", (480, 320), (30, 120, 200)).save(picture, "JPEG")
    plan = tmp_path / "lesson-plan.pdf"
    plan.write_bytes(PDF)

    tutor = pages.open()
    sign_in(tutor, server.shared["tutor_email"])
    tutor.goto("/app/account")
    tutor.get_by_label(re.compile("^A JPEG, PNG, WebP or GIF image")).set_input_files(picture)
    tutor.get_by_role("button", name="Upload picture").click()
    tutor.wait_for_url(re.compile(r"/app/account\?done=avatar"))
    tutor.get_by_text("Your picture was updated.").wait_for()
    _served(tutor, ".nav-account picture")
    _served(tutor, "section picture.avatar")
    check_page(tutor, "account-avatar")

    tutor.goto(server.shared["booking_path"])
    panel = tutor.locator("#materials")
    panel.get_by_label(re.compile("^Add a file")).set_input_files(plan)
    panel.get_by_role("button", name="Upload").click()
    tutor.wait_for_url(re.compile(r"materials=added"))
    link = tutor.locator("#materials").get_by_role("link", name="lesson-plan.pdf")
    link.wait_for()
    file_path = link.get_attribute("href")
    assert file_path and file_path.startswith("/app/files/")
    check_page(tutor, "booking-materials")

    visitor = pages.open()
    visitor.goto(server.shared["tutor_path"])
    with Image.open(io.BytesIO(_served(visitor, ".profile picture.avatar"))) as image:
        assert image.size == (256, 256)
    with Image.open(io.BytesIO(_served(visitor, ".profile picture.avatar", "image/png"))) as image:
        assert image.size == (256, 256)

    student = pages.open()
    sign_in(student, server.shared["student_email"])
    student.goto(server.shared["booking_path"])
    with student.expect_download() as downloading:
        student.locator("#materials").get_by_role("link", name="lesson-plan.pdf").click()
    assert Path(downloading.value.path()).read_bytes() == PDF

    stranger = pages.open()
    sign_up(stranger, name="Nosy Stranger", email=unique("stranger"), role="student")
    assert stranger.request.get(file_path).status == 404
    booking_id = server.shared["booking_path"].rsplit("/", 1)[1]
    assert "lesson-plan.pdf" not in stranger.request.get(f"/app/files/materials/{booking_id}").text()
