"""supabase-js (npm, tests/node/package-lock.json), unchanged, run by Node against TutorApp."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import httpx
import pyotp

from tests.gotrue.conftest import ANON_KEY, NODE_DIR, PASSWORD, SCALE, Live


async def run_flow(live: Live, email: str) -> dict:
    """Run tests/node/gotrue_flow.mjs, answering what it asks from the server side."""
    process = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node", str(NODE_DIR / "gotrue_flow.mjs"), live.url, ANON_KEY,
        email, PASSWORD, cwd=NODE_DIR, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin and process.stdout and process.stderr
    try:
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=60 * SCALE)
            if not line:
                stderr = (await process.stderr.read()).decode()
                raise AssertionError(f"node ended without a result:\n{stderr}")
            message = json.loads(line)
            if "result" in message:
                return message["result"]
            question = message["ask"]
            if "link" in question:
                answer = await live.mail_link_token(question["email"], question["link"])
            elif "open" in question:  # a browser opening the emailed link
                async with httpx.AsyncClient(timeout=30 * SCALE) as browser:
                    opened = await browser.get(await live.mail_link(question["email"],
                                                                    question["open"]))
                assert opened.status_code == 303, opened.text
                answer = opened.headers["location"]
            elif "code" in question:
                answer = await live.mail_code(question["code"])
            else:
                answer = pyotp.TOTP(question["totp"]).now()
            process.stdin.write(json.dumps({"answer": answer}).encode() + b"\n")
            await process.stdin.drain()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_supabase_js_account_life(live: Live, node_modules: Path) -> None:
    email = "js.flow@example.com"
    result = await run_flow(live, email)
    assert result.pop("pkce") == {
        "session": None, "landed": f"{live.url}/app/welcome", "email": f"pkce.{email}",
        "amr": ["otp"], "events": ["INITIAL_SESSION", "SIGNED_IN"],
    }
    assert result == {
        "signUp": {"session": None, "email": email,
                   "metadata": {"display_name": "Js Flow", "time_zone": "Europe/Paris",
                                "locale": "en"}},
        "unconfirmed": {"status": 400, "code": "email_not_confirmed"},
        "confirmed": True,
        "wrong": {"name": "AuthApiError", "status": 400, "code": "invalid_credentials",
                  "message": "Invalid login credentials"},
        "token": {"role": "authenticated", "aal": "aal1", "appRole": "student",
                  "amr": ["password"], "email": email, "aud": "authenticated"},
        "getUser": True,
        "ourApi": {"status": 200, "email": email},
        "refresh": {"rotated": True, "amrKept": True},
        "unknownRefresh": {"status": 400, "code": "refresh_token_not_found"},
        "qr": True,
        "mfa": {"aal": "aal2", "current": "aal2", "next": "aal2"},
        "factors": ["verified"],
        "otp": {"aal": "aal1", "amr": ["otp"]},
        "otpLevel": {"current": "aal1", "next": "aal2"},
        "afterSignOut": {"status": 401, "session": None},
        "events": ["INITIAL_SESSION", "SIGNED_IN", "SIGNED_OUT", "SIGNED_IN", "TOKEN_REFRESHED",
                   "MFA_CHALLENGE_VERIFIED", "SIGNED_IN", "SIGNED_OUT"],
    }
