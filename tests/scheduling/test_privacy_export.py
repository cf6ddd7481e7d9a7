"""The privacy export carries what the marketplace holds about a user."""

from tests.scheduling.conftest import Market, sign_in
from tests.scheduling.test_bookings import book, tutor
from tutorapp.auth.roles import Role


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


async def test_deleting_a_tutor_withdraws_the_profile_and_cancels_future_lessons(
    app, client, market: Market
) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from sqlalchemy import update

    from tests.scheduling.test_bookings import pin
    from tutorapp.accounts.models import User
    from tutorapp.core.security import hash_password
    from tutorapp.core.time import utcnow

    tutor_caller, tutor_id = await tutor(app, client, market)
    pin(app, utcnow())
    student = await sign_in(app, role=Role.student)
    day = (utcnow() + timedelta(days=3)).date()
    start = datetime(day.year, day.month, day.day, 10, tzinfo=ZoneInfo("Europe/London"))
    booked = await book(client, student, tutor_id, start.isoformat(), 30)
    assert booked.status_code == 201, booked.text

    async with app.state.database.unit_of_work() as session:  # the helper made no password
        await session.execute(update(User).where(User.id == tutor_caller.id)
                              .values(password_hash=hash_password("tutor password 1")))
    deleted = await client.request("DELETE", "/api/v1/me", headers=tutor_caller.headers,
                                   json={"current_password": "tutor password 1"})
    assert deleted.status_code == 204, deleted.text

    lesson = (await client.get(f"/api/v1/bookings/{booked.json()['id']}",
                               headers=student.headers)).json()
    assert (lesson["status"], lesson["refund"]) == ("cancelled", True)
    assert (await client.get(f"/api/v1/tutors/{tutor_id}")).status_code == 404
