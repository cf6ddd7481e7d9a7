"""A stand-in for Resend's HTTP API, answering as its documentation describes:
`POST /emails` -> `{"id"}`, `POST /emails/batch` -> `{"data": [{"id"}, ...]}`,
errors `{"statusCode", "name", "message"}`, `Idempotency-Key` replays (same key and
body: the first answer again, nothing sent; same key, other body: 409
`invalid_idempotent_request`), and scripted failures (429 with rate-limit headers,
409 `concurrent_idempotent_requests`, 4xx, 5xx)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import respx

BASE_URL = "https://api.resend.test"
API_KEY = "re_test_0123456789"


@dataclass
class FakeResend:
    sent: list[dict[str, Any]] = field(default_factory=list)  # emails actually sent
    requests: list[httpx.Request] = field(default_factory=list)
    # answered first, in order; an exception is raised instead (network failure)
    script: list[httpx.Response | Exception] = field(default_factory=list)
    _replies: dict[str, tuple[bytes, httpx.Response]] = field(default_factory=dict)

    def fail_next(self, status: int, name: str, message: str = "scripted", *,
                  headers: dict[str, str] | None = None) -> None:
        self.script.append(httpx.Response(
            status, json={"statusCode": status, "name": name, "message": message},
            headers=headers,
        ))

    def _handle(self, request: httpx.Request, batch: bool) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return httpx.Response(401, json={"statusCode": 401, "name": "missing_api_key",
                                             "message": "Missing API key in the authorization header."})
        if self.script:
            scripted = self.script.pop(0)
            if isinstance(scripted, Exception):
                raise scripted  # a network failure
            return scripted
        key = request.headers.get("idempotency-key")
        if key is not None and key in self._replies:
            body, reply = self._replies[key]
            if body != request.content:
                return httpx.Response(409, json={
                    "statusCode": 409, "name": "invalid_idempotent_request",
                    "message": "Same idempotency key used with a different request payload."})
            return httpx.Response(reply.status_code, content=reply.content,
                                  headers={"content-type": "application/json"})
        payload = json.loads(request.content)
        emails = payload if batch else [payload]
        ids = []
        for email in emails:
            email_id = str(uuid.uuid4())
            self.sent.append({"id": email_id, **email})
            ids.append(email_id)
        body = {"data": [{"id": i} for i in ids]} if batch else {"id": ids[0]}
        reply = httpx.Response(200, json=body)
        if key is not None:
            self._replies[key] = (request.content, reply)
        return reply

    def install(self, router: respx.MockRouter) -> None:
        router.post(f"{BASE_URL}/emails").mock(side_effect=lambda r: self._handle(r, False))
        router.post(f"{BASE_URL}/emails/batch").mock(side_effect=lambda r: self._handle(r, True))


RESEND_SETTINGS = {"email_provider": "resend", "resend_api_key": API_KEY,
                   "resend_api_url": BASE_URL, "email_from": "TutorApp <hello@tutorapp.test>"}
