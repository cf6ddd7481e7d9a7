"""Resend's HTTP API (https://resend.com/docs/api-reference).

- `POST /emails` with `Authorization: Bearer re_...`; answers `{"id": "..."}`.
- `POST /emails/batch` (up to 100 emails) answers `{"data": [{"id": ...}, ...]}`.
- `Idempotency-Key` on every request (our message id; for a batch, derived from the
  ids): Resend answers a repeated key with the first response and sends nothing
  again, so a retry after a timeout never mails twice.
- Errors are `{"statusCode": ..., "name": ..., "message": ...}`. 429 (rate limit,
  with `retry-after` / `ratelimit-reset` seconds), 409 `concurrent_idempotent_requests`
  (the same key still in flight) and 5xx are retried; other 4xx are final.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import httpx

from tutorapp.config import Settings
from tutorapp.integrations.email.base import EmailDeliveryError, EmailRejected, OutgoingEmail

MAX_BATCH = 100
# Longest wait honoured from a 429's headers before handing the retry to the job.
MAX_RETRY_AFTER_SECONDS = 60.0
RETRYABLE_409 = "concurrent_idempotent_requests"


def _payload(email: OutgoingEmail) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": email.sender,
        "to": [email.to],
        "subject": email.subject,
        "html": email.html,
        "text": email.text,
    }
    if email.attachments:
        body["attachments"] = [
            {
                "filename": a["filename"],
                "content": a["content"] if a.get("base64")
                else base64.b64encode(a["content"].encode()).decode(),
                **({"content_type": a["content_type"]} if a.get("content_type") else {}),
            }
            for a in email.attachments
        ]
    return body


def retry_after_seconds(response: httpx.Response) -> float | None:
    for header in ("retry-after", "ratelimit-reset"):
        value = response.headers.get(header)
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            continue
    return None


def _error(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "unknown_error", response.text[:200]
    if not isinstance(body, dict):
        return "unknown_error", str(body)[:200]
    return str(body.get("name", "unknown_error")), str(body.get("message", ""))


class ResendProvider:
    name = "resend"

    def __init__(self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
                 ) -> None:
        self.settings = settings
        self.transport = transport

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.settings.resend_api_url,
            timeout=self.settings.resend_timeout_seconds,
            transport=self.transport,
            headers={"Authorization": f"Bearer {self.settings.resend_api_key}",
                     "User-Agent": "tutorapp"},
        )

    async def _post(self, path: str, body: Any, idempotency_key: str) -> Any:
        try:
            async with self._client() as client:
                response = await client.post(
                    path, json=body, headers={"Idempotency-Key": idempotency_key}
                )
        except httpx.HTTPError as exc:  # timeouts, refused connections, resets
            raise EmailDeliveryError(f"Resend unreachable: {exc!r}") from exc
        if response.is_success:
            return response.json()
        name, message = _error(response)
        detail = f"Resend {response.status_code} {name}: {message}"
        if response.status_code == 429:
            wait = retry_after_seconds(response)
            if wait is not None:
                await asyncio.sleep(min(wait, MAX_RETRY_AFTER_SECONDS))
            raise EmailDeliveryError(detail, retry_after=wait)
        if response.status_code == 409 and name == RETRYABLE_409:
            raise EmailDeliveryError(detail)
        if 400 <= response.status_code < 500:
            raise EmailRejected(detail)
        raise EmailDeliveryError(detail)

    async def send(self, email: OutgoingEmail) -> str:
        body = await self._post("/emails", _payload(email), f"email/{email.id}")
        return str(body["id"])

    async def send_batch(self, emails: list[OutgoingEmail]) -> list[str]:
        if not emails:
            return []
        if len(emails) > MAX_BATCH:
            raise ValueError(f"Resend takes at most {MAX_BATCH} emails per batch")
        key = "batch/" + hashlib.sha256(",".join(e.id for e in emails).encode()).hexdigest()
        body = await self._post("/emails/batch", [_payload(e) for e in emails], key)
        return [str(item["id"]) for item in body["data"]]
