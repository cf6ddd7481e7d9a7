"""The protocol frame by frame, with a bare WebSocket client: vsn 1.0.0 objects and 2.0.0
arrays and binary broadcasts, heartbeat, refusals and quotas, and replay by sequence."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gotrue.conftest import ANON_KEY
from tests.realtime.conftest import RT
from tests.realtime.test_supabase_py import token
from tests.scheduling.conftest import Caller, sign_in
from tests.waiting import deadline
from tutorapp.auth.roles import Role
from tutorapp.realtime import hub as realtime_hub
from tutorapp.realtime.protocol import VSN_2, UserBroadcast, encode_broadcast


class Wire:
    def __init__(self, ws: Any, vsn: str) -> None:
        self.ws, self.vsn, self.ref = ws, vsn, 0

    async def send(self, topic: str, event: str, payload: Any, join_ref: str | None = None) -> str:
        self.ref += 1
        ref = str(self.ref)
        if self.vsn == "2.0.0":
            await self.ws.send(json.dumps([join_ref, ref, topic, event, payload]))
        else:
            await self.ws.send(json.dumps({"topic": topic, "event": event, "payload": payload,
                                           "ref": ref, "join_ref": join_ref}))
        return ref

    async def recv(self) -> Any:
        raw = await asyncio.wait_for(self.ws.recv(), deadline(10))
        if isinstance(raw, bytes):
            return raw
        value = json.loads(raw)
        if self.vsn == "2.0.0":
            join_ref, ref, topic, event, payload = value
            return {"join_ref": join_ref, "ref": ref, "topic": topic, "event": event,
                    "payload": payload}
        return value

    async def until(self, event: str) -> Any:
        while True:
            frame = await self.recv()
            if isinstance(frame, bytes) and event == "binary":
                return frame
            if isinstance(frame, dict) and frame["event"] == event:
                return frame

    async def join(self, topic: str, caller: Caller | None, **config: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {"config": {"broadcast": {"ack": False, "self": False},
                                              "presence": {"key": ""}, "private": False}
                                   | config}
        if caller is not None:
            payload["access_token"] = token(caller)
        ref = await self.send(f"realtime:{topic}", "phx_join", payload)
        while True:
            frame = await self.recv()
            if isinstance(frame, dict) and frame["event"] == "phx_reply" and frame["ref"] == ref:
                return frame


@asynccontextmanager
async def wire(rt: RT, vsn: str = "2.0.0", **headers: str) -> AsyncIterator[Wire]:
    url = f"{rt.server.ws}/websocket?apikey={ANON_KEY}&vsn={vsn}"
    async with websockets.connect(url, additional_headers=headers) as ws:
        yield Wire(ws, vsn)


async def publish(rt: RT, topic: str, n: int) -> None:
    hub = rt.server.app.state.realtime
    change = realtime_hub.change(table="bookings", type="UPDATE", record={"n": n})
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
        hub.publish_change([topic], change), hub.loop))


@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
async def test_heartbeat_join_reply_and_refusals(rt: RT, vsn: str) -> None:
    student = await sign_in(rt.app, role=Role.student)
    async with wire(rt, vsn) as w:
        ref = await w.send("phoenix", "heartbeat", {})
        reply = await w.until("phx_reply")
        assert reply["topic"] == "phoenix" and reply["ref"] == ref
        assert reply["payload"] == {"status": "ok", "response": {}}

        joined = await w.join(f"user:{student.id}", student, postgres_changes=[
            {"event": "*", "schema": "public", "table": "bookings"}])
        assert joined["payload"]["status"] == "ok"
        [binding] = joined["payload"]["response"]["postgres_changes"]
        assert binding["table"] == "bookings" and isinstance(binding["id"], int)
        system = await w.until("system")
        assert system["payload"] == {"extension": "postgres_changes", "status": "ok",
                                     "message": "Subscribed to PostgreSQL",
                                     "channel": f"user:{student.id}"}

        other = await sign_in(rt.app, role=Role.student)
        refused = await w.join(f"user:{other.id}", student)
        assert refused["payload"] == {"status": "error", "response": {
            "reason": "Unauthorized: You do not have permissions to read from this Channel "
                      f"topic: user:{other.id}"}}
        nothing = await w.join("", None)
        assert nothing["payload"]["response"]["reason"].startswith("TopicNameRequired")
        unknown = await w.join("nosuch:1", student)
        assert unknown["payload"]["status"] == "error"
        bad = await w.join(f"user:{student.id}:x", None)
        assert bad["payload"]["status"] == "error"
        await w.ws.send(json.dumps({"garbage": True}) if vsn == "2.0.0" else "[1,2]")
        await w.send("phoenix", "heartbeat", {})
        assert (await w.until("phx_reply"))["topic"] == "phoenix"  # still served


async def test_an_invalid_token_is_refused(rt: RT) -> None:
    student = await sign_in(rt.app, role=Role.student)
    async with wire(rt) as w:
        ref = await w.send(f"realtime:user:{student.id}", "phx_join",
                           {"config": {}, "access_token": "not-a-jwt"})
        reply = await w.until("phx_reply")
        assert reply["ref"] == ref and reply["payload"]["status"] == "error"
        assert reply["payload"]["response"]["reason"].startswith("InvalidJWTToken: ")


async def test_binary_broadcast_round_trip_and_ack(rt: RT) -> None:
    student = await sign_in(rt.app, role=Role.student)
    topic = f"user:{student.id}"
    async with wire(rt) as a, wire(rt, "1.0.0") as b:
        assert (await a.join(topic, student, broadcast={"ack": True, "self": True}))[
            "payload"]["status"] == "ok"
        assert (await b.join(topic, student))["payload"]["status"] == "ok"
        # a kind-3 user broadcast push, JSON-encoded payload, as realtime-js sends it
        t, e, body = f"realtime:{topic}".encode(), b"ping", json.dumps({"n": 1}).encode()
        frame = struct.pack("7B", 3, 1, 1, len(t), len(e), 0, 1) + b"1" + b"9" + t + e + body
        await a.ws.send(frame)
        echoed: bytes | None = None
        ack: dict[str, Any] | None = None
        while echoed is None or ack is None:  # the echo (self: true) and the ack, any order
            frame = await a.recv()
            if isinstance(frame, bytes):
                echoed = frame
            elif frame["event"] == "phx_reply":
                ack = frame
        assert ack["ref"] == "9"
        assert ack["payload"]["status"] == "ok"
        # kind 4 to a vsn 2 client
        assert echoed[0] == 4 and echoed.endswith(b"{\"n\":1}")
        assert echoed == encode_broadcast(UserBroadcast(topic=topic, event="ping",
                                                        payload={"n": 1},
                                                        from_binary_push=True),
                                          f"realtime:{topic}", VSN_2)
        heard = await b.until("broadcast")  # and a JSON object to a vsn 1 client
        assert heard["payload"] == {"type": "broadcast", "event": "ping", "payload": {"n": 1}}


async def test_an_oversized_broadcast_is_refused(rt: RT) -> None:
    student = await sign_in(rt.app, role=Role.student)
    settings = rt.server.app.state.settings
    topic = f"user:{student.id}"
    async with wire(rt) as w:
        assert (await w.join(topic, student, broadcast={"ack": True}))["payload"]["status"] == "ok"
        big = {"x": "a" * (settings.realtime_max_payload_bytes + 1)}
        ref = await w.send(f"realtime:{topic}", "broadcast",
                           {"type": "broadcast", "event": "big", "payload": big}, join_ref="1")
        reply = await w.until("phx_reply")
        assert reply["ref"] == ref and reply["payload"] == {
            "status": "error", "response": {"reason": "Payload size exceeded"}}


async def test_the_origin_allow_list(rt: RT) -> None:
    with pytest.raises(websockets.InvalidStatus):
        async with wire(rt, Origin="https://evil.example"):
            pass
    async with wire(rt, Origin=rt.server.url) as w:
        await w.send("phoenix", "heartbeat", {})
        assert (await w.until("phx_reply"))["payload"]["status"] == "ok"


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.integers(0, 6), during=st.integers(0, 6), after=st.integers(1, 4))
async def test_reconnect_replays_what_was_missed_with_no_gap_and_no_duplicate(
        rt: RT, before: int, during: int, after: int) -> None:
    student = await sign_in(rt.app, role=Role.student)
    topic = f"user:{student.id}"
    binding = [{"event": "*", "schema": "public", "table": "bookings"}]
    seen: list[int] = []
    async with wire(rt) as w:
        await w.join(topic, student, postgres_changes=binding)
        for n in range(before):
            await publish(rt, topic, n)
        for _ in range(before):
            seen.append((await w.until("postgres_changes"))["payload"]["data"]["seq"])
    for n in range(during):  # disconnected
        await publish(rt, topic, before + n)
    async with wire(rt) as w:
        last = seen[-1] if seen else 0
        await w.join(topic, student, postgres_changes=binding,
                     broadcast={"replay": {"after_seq": last}}, private=True)
        for n in range(after):  # live, possibly while the replay is sent
            await publish(rt, topic, before + during + n)
        for _ in range(during + after):
            frame = await w.until("postgres_changes")
            seen.append(frame["payload"]["data"]["seq"])
            assert frame["payload"]["data"]["record"]["realtime_seq"] == seen[-1]
    assert seen == list(range(1, before + during + after + 1))


async def test_rest_broadcast_reaches_joined_clients_and_checks_its_input(rt: RT) -> None:
    student = await sign_in(rt.app, role=Role.student)
    topic = f"user:{student.id}"
    settings = rt.server.app.state.settings
    async with wire(rt) as w:
        assert (await w.join(topic, student))["payload"]["status"] == "ok"
        batch = {"messages": [{"topic": topic, "event": "note", "payload": {"n": 1}}]}
        response = await rt.http.post("/realtime/v1/api/broadcast", json=batch,
                                      headers=student.headers | {"apikey": ANON_KEY})
        assert response.status_code == 202 and response.content == b""
        heard = await w.until("broadcast")
        assert heard["payload"] == {"type": "broadcast", "event": "note", "payload": {"n": 1}}

    too_big = {"messages": [{"topic": topic, "event": "note",
                             "payload": {"x": "a" * settings.realtime_max_payload_bytes}}]}
    response = await rt.http.post("/realtime/v1/api/broadcast", json=too_big,
                                  headers=student.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "messages.0.payload"
    response = await rt.http.post("/realtime/v1/api/broadcast", json={"messages": []},
                                  headers=student.headers)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    response = await rt.http.post(f"/realtime/v1/api/broadcast/{topic}/events/note",
                                  content=b"{not json", headers=student.headers)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "payload"


@pytest.fixture(scope="module")
def tight_server(database_url: str, live_server: Any) -> Any:
    from tests.realtime.conftest import serve

    # the same public URL as `rt`'s server: the tokens' issuer
    server, thread, live = serve(database_url, public_url=live_server.url,
                                 realtime_max_channels_per_client=2,
                                 realtime_max_joins_per_second=3, realtime_max_clients=2,
                                 realtime_max_messages_per_second=5)
    yield live
    server.should_exit = True
    thread.join(timeout=deadline(30))


async def test_channel_join_and_client_quotas(rt: RT, tight_server: Any) -> None:
    tight = RT(server=tight_server, db=rt.db, http=rt.http, app=rt.app)
    student = await sign_in(rt.app, role=Role.student)
    async with wire(tight) as w:
        for n in range(2):
            joined = await w.join(f"tutor:{student.id}:availability", None) if n == 0 else \
                await w.join(f"user:{student.id}", student)
            assert joined["payload"]["status"] == "ok"
        third = await w.join(f"booking:{student.id}", student)
        assert third["payload"]["response"] == {
            "reason": "ChannelRateLimitReached: Too many channels"}
        # 30 joins sent at once: whatever second boundary they straddle, one second
        # holds more than 3 of them
        for n in range(30):
            await w.send(f"realtime:booking:{n}", "phx_join", {"config": {}})
        reasons = []
        with pytest.raises(websockets.ConnectionClosed):  # noqa: PT012 - read until the close
            while True:
                frame = await w.recv()
                reasons.append(frame["payload"]["response"].get("reason"))
        assert reasons[-1] == "ClientJoinRateLimitReached: Too many joins per second"
    async with wire(tight) as w:
        topic = f"user:{student.id}"
        assert (await w.join(topic, student))["payload"]["status"] == "ok"
        # 30 messages at once, 5 allowed per second: the channel is shut down with a
        # system message, whatever second boundary they straddle
        for _ in range(30):
            await w.send(f"realtime:{topic}", "broadcast",
                         {"type": "broadcast", "event": "x", "payload": {}}, join_ref="1")
        system = await w.until("system")
        assert system["payload"]["message"] == "Too many messages per second"
        assert (await w.until("phx_close"))["topic"] == f"realtime:{topic}"
    async with wire(tight), wire(tight):
        with pytest.raises((websockets.InvalidStatus, websockets.ConnectionClosed)):  # noqa: PT012
            async with wire(tight) as third_client:  # over the clients per process
                await third_client.send("phoenix", "heartbeat", {})
                await third_client.recv()


async def test_a_browser_joins_with_its_session_cookie(rt: RT) -> None:
    from tests.factories import make_user
    from tutorapp.accounts import sessions
    from tutorapp.accounts.models import User

    account = await make_user(rt.db, role=Role.student)
    settings = rt.server.app.state.settings
    async with rt.db.unit_of_work() as session:
        tokens = await sessions.start_session(
            session, settings, await session.get(User, account.user.id), amr=["pwd"],
            aal="aal1", client=sessions.Client(ip="127.0.0.1", user_agent="browser"),
            with_cookie=True)
    cookie = f"{settings.session_cookie_name}={tokens.cookie_token}"
    async with wire(rt, Cookie=cookie, Origin=rt.server.url) as w:
        # supabase-js sends the API key as the token while signed out: the cookie decides
        ref = await w.send(f"realtime:user:{account.user.id}", "phx_join",
                           {"config": {}, "access_token": ANON_KEY})
        reply = await w.until("phx_reply")
        assert reply["ref"] == ref and reply["payload"]["status"] == "ok"
    async with wire(rt) as w:  # the same join without the cookie
        refused = await w.join(f"user:{account.user.id}", None)
        assert refused["payload"]["status"] == "error"


async def test_access_token_refresh_keeps_the_channel_and_a_bad_one_closes_it(rt: RT) -> None:
    student = await sign_in(rt.app, role=Role.student)
    fresh = await sign_in(rt.app, role=Role.student)
    topic = f"realtime:user:{student.id}"
    async with wire(rt) as w:
        assert (await w.join(f"user:{student.id}", student))["payload"]["status"] == "ok"
        await w.send(topic, "access_token", {"access_token": token(student)}, join_ref="1")
        await w.send("phoenix", "heartbeat", {})
        assert (await w.until("phx_reply"))["topic"] == "phoenix"  # nothing else came first
        # a valid token of someone else: the topic is not theirs
        await w.send(topic, "access_token", {"access_token": token(fresh)}, join_ref="1")
        system = await w.until("system")
        assert system["payload"] == {
            "extension": "system", "status": "error", "channel": f"user:{student.id}",
            "message": "You do not have permissions to read from this Channel topic: "
                       f"user:{student.id}"}
        closed = await w.until("phx_close")
        assert closed["topic"] == topic and closed["join_ref"] == "1"

