"""supabase-py's realtime client (PyPI `realtime`, unchanged) against a real server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from realtime import AsyncRealtimeClient
from tests.realtime.conftest import EVERY_DAY, RT
from tests.scheduling.conftest import Caller, approved_tutor, make_market, sign_in
from tests.waiting import wait_until
from tutorapp.auth.roles import Role

NOW = datetime(2026, 6, 1, 7, tzinfo=UTC)


def token(caller: Caller) -> str:
    return caller.headers["Authorization"].removeprefix("Bearer ")


async def client(rt: RT, caller: Caller | None) -> AsyncRealtimeClient:
    from tests.gotrue.conftest import ANON_KEY

    socket = AsyncRealtimeClient(rt.server.ws, token=ANON_KEY, auto_reconnect=False)
    await socket.connect()
    if caller is not None:
        await socket.set_auth(token(caller))
    return socket


async def expiring_token(rt: RT, caller: Caller, *, seconds: int) -> str:
    """A token of `caller`'s session that expires `seconds` from now."""
    from sqlalchemy import select

    from tutorapp.accounts.models import AuthSession
    from tutorapp.core.security import issue_access_token
    from tutorapp.core.time import utcnow

    settings = rt.server.app.state.settings.model_copy(
        update={"access_token_ttl_seconds": seconds})
    async with rt.db.session() as session:
        auth = await session.scalar(select(AuthSession).where(AuthSession.user_id == caller.id))
    short, _ = issue_access_token(settings, user_id=caller.id, role=caller.role.value,
                                  aal="aal1", amr=["pwd"], session_id=auth.id, now=utcnow())
    return short


async def booked(rt: RT) -> tuple[Caller, Caller, Caller, str]:
    """(student, tutor, parent of the student, booking id)."""
    rt.server.app.state.clock = lambda: NOW
    market = await make_market(rt.app, rt.http)
    tutor, tutor_id = await approved_tutor(rt.app, rt.http, market, rules=EVERY_DAY)
    parent = await sign_in(rt.app, role=Role.parent)
    student = await sign_in(rt.app, role=Role.student, parent_id=parent.id)
    response = await rt.http.post("/api/v1/bookings", headers=parent.headers, json={
        "tutor_id": tutor_id, "start": "2026-06-02T10:00:00+01:00", "length": 30,
        "student_id": str(student.id)})
    assert response.status_code == 201, response.text
    return student, tutor, parent, response.json()["id"]


async def test_join_broadcast_ack_presence_and_a_booking_event(rt: RT) -> None:
    _student, tutor, parent, booking_id = await booked(rt)
    topic = f"booking:{booking_id}"
    heard: list[Any] = []
    changes: list[Any] = []
    states: list[str] = []
    tutor_socket, parent_socket = await client(rt, tutor), await client(rt, parent)
    try:
        tutor_channel = tutor_socket.channel(topic, {"config": {
            "broadcast": {"ack": True, "self": False}, "presence": {"key": "tutor"}}})
        tutor_channel.on_broadcast("hello", lambda p: heard.append(p))
        tutor_channel.on_presence_sync(lambda: None)
        tutor_channel.on_postgres_changes("UPDATE", lambda p: changes.append(p),
                                          schema="public", table="bookings")
        await tutor_channel.subscribe(lambda status, err: states.append(str(status)))
        await wait_until(lambda: "RealtimeSubscribeStates.SUBSCRIBED" in states
                         or "SUBSCRIBED" in states, timeout=10, what="the tutor's join")

        parent_channel = parent_socket.channel(topic, {"config": {
            "broadcast": {"ack": True}, "presence": {"key": "parent"}}})
        parent_channel.on_presence_sync(lambda: None)
        await parent_channel.subscribe()
        await parent_channel.track({"typing": False})
        await wait_until(lambda: "parent" in tutor_channel.presence.state, timeout=10,
                         what="the parent's presence at the tutor")
        assert tutor_channel.presence.state["parent"][0]["typing"] is False

        await parent_channel.send_broadcast("hello", {"text": "hi"})
        await wait_until(lambda: heard, timeout=10, what="the broadcast")
        assert heard[0]["payload"] == {"text": "hi"} and heard[0]["event"] == "hello"

        response = await rt.http.post(f"/api/v1/bookings/{booking_id}/cancel",
                                      headers=parent.headers, json={"reason": "ill"})
        assert response.status_code == 200, response.text
        await wait_until(lambda: changes, timeout=10, what="the cancellation event")
        change = changes[0]
        data = change.get("data", change)
        assert data["record"]["status"] == "cancelled"
        assert data["record"]["id"] == booking_id
        assert data["type"] == "UPDATE" and data["table"] == "bookings"

        await parent_channel.untrack()
        await wait_until(lambda: "parent" not in tutor_channel.presence.state, timeout=10,
                         what="the parent's leave")
    finally:
        await tutor_socket.close()
        await parent_socket.close()


async def test_a_stranger_is_refused_and_an_anonymous_reader_sees_availability(rt: RT) -> None:
    student, _tutor, _parent, booking_id = await booked(rt)
    stranger = await sign_in(rt.app, role=Role.student)
    socket = await client(rt, stranger)
    anonymous = await client(rt, None)
    errors: list[Any] = []
    try:
        channel = socket.channel(f"booking:{booking_id}")
        await channel.subscribe(lambda status, err: errors.append((str(status), err)))
        await wait_until(lambda: errors, timeout=10, what="the refusal")
        assert "CHANNEL_ERROR" in errors[0][0]
        assert "You do not have permissions to read from this Channel topic" in str(errors[0][1])

        refused: list[Any] = []
        own = anonymous.channel(f"user:{student.id}")
        await own.subscribe(lambda status, err: refused.append(str(status)))
        await wait_until(lambda: refused, timeout=10, what="the anonymous refusal")
        assert "CHANNEL_ERROR" in refused[0]
    finally:
        await socket.close()
        await anonymous.close()


async def test_an_expired_token_closes_the_channel_with_a_system_message(rt: RT) -> None:
    _student, tutor, _parent, booking_id = await booked(rt)
    short = await expiring_token(rt, tutor, seconds=2)
    socket = await client(rt, None)
    await socket.set_auth(short)
    states: list[tuple[str, Any]] = []
    try:
        channel = socket.channel(f"booking:{booking_id}")
        await channel.subscribe(lambda status, err: states.append((str(status), err)))
        await wait_until(lambda: any("CLOSED" in s for s, _ in states), timeout=15,
                         what="the channel closing at expiry")
        assert states[0][0].endswith("SUBSCRIBED")
        # the system message (status error) reaches the client as the channel's error
        errors = [str(err) for s, err in states if "CHANNEL_ERROR" in s]
        assert errors and "Token has expired" in errors[0], states
    finally:
        await socket.close()
