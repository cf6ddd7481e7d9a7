"""supabase-js (realtime-js, vsn 2.0.0 with binary broadcasts), unchanged, run by Node."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from tests.gotrue.conftest import ANON_KEY, NODE_DIR, SCALE
from tests.realtime.conftest import RT
from tests.realtime.test_supabase_py import booked, expiring_token, token
from tests.scheduling.conftest import sign_in
from tutorapp.auth.roles import Role


async def test_supabase_js_joins_broadcasts_tracks_and_hears_the_booking(
        rt: RT, node_modules: Path) -> None:
    student, tutor, parent, booking_id = await booked(rt)
    stranger = await sign_in(rt.app, role=Role.student)
    tokens = {"tutor": token(tutor), "student": token(student), "stranger": token(stranger),
              "booking": booking_id}
    process = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node", str(NODE_DIR / "realtime_flow.mjs"), rt.server.url,
        ANON_KEY, json.dumps(tokens), cwd=NODE_DIR, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdin and process.stdout and process.stderr
    try:
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=60 * SCALE)
            if not line:
                raise AssertionError(f"node ended: {(await process.stderr.read()).decode()}")
            message = json.loads(line)
            if "result" in message:
                result = message["result"]
                break
            question = message["ask"]
            answer: object = True
            if "expiring" in question:
                answer = await expiring_token(rt, tutor, seconds=question["expiring"])
            else:
                response = await rt.http.post(f"/api/v1/bookings/{question['cancel']}/cancel",
                                              headers=parent.headers, json={"reason": "ill"})
                assert response.status_code == 200, response.text
            process.stdin.write(json.dumps({"answer": answer}).encode() + b"\n")
            await process.stdin.drain()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    assert result == {
        "tutorJoin": {"status": "SUBSCRIBED"},
        "studentJoin": {"status": "SUBSCRIBED"},
        "track": "ok",
        "presence": [{"typing": True}],
        "send": "ok",
        "heard": [{"event": "hello", "payload": {"text": "hi"}, "type": "broadcast"}],
        "httpSend": {"success": True},
        "change": {"eventType": "UPDATE", "table": "bookings", "status": "cancelled",
                   "id": booking_id, "old": "confirmed"},
        "stranger": {"status": "CHANNEL_ERROR",
                     "error": "Unauthorized: You do not have permissions to read from this "
                              f"Channel topic: booking:{booking_id}"},
        "left": True,
        "expiry": {"statuses": ["SUBSCRIBED", "CLOSED"], "system": [
            {"extension": "system", "status": "error",
             "message": "Token has expired 0 seconds ago"}]},
    }
