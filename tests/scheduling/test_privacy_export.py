"""The privacy export carries what the marketplace holds about a user."""

from tests.scheduling.conftest import Market, sign_in
from tests.scheduling.test_bookings import book, tutor
from tutorapp.accounts.models import Role


async def test_export_lists_lessons_for_student_and_tutor(app, client, market: Market) -> None:
    tutor_caller, tutor_id = await tutor(app, client, market)
    student = await sign_in(app, role=Role.student)
    booked = await book(client, student, tutor_id, "2026-06-02T10:00:00+01:00", 30)
    assert booked.status_code == 201, booked.text

    student_export = (await client.get("/api/v1/me/export", headers=student.headers)).json()
    assert [b["id"] for b in student_export["bookings"]] == [booked.json()["id"]]
    assert student_export["tutor_profile"] is None
    assert student_export["reviews"] == []
    assert student_export["billing"]["wallet"] is None

    tutor_export = (await client.get("/api/v1/me/export", headers=tutor_caller.headers)).json()
    assert [b["id"] for b in tutor_export["bookings"]] == [booked.json()["id"]]
    assert tutor_export["tutor_profile"]["id"] == tutor_id
