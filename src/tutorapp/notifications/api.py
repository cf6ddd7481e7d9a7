"""Resend's webhooks: bounces and complaints feed the suppression list.

Resend signs each delivery the Svix way (`svix-id`, `svix-timestamp`,
`svix-signature`, secret `whsec_...`); `svix.Webhook.verify` checks the signature
and refuses a timestamp more than 5 minutes off. A verified event is stored once
per `svix-id` in the one webhook inbox (`tutorapp.webhooks`; a redelivery is
acknowledged and ignored) and applied by its job after commit, with attempts,
backoff and a dead-letter state; the endpoint answers at once.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from svix.webhooks import Webhook, WebhookVerificationError

from tutorapp.auth.deps import PUBLIC
from tutorapp.core.db import SessionDep
from tutorapp.core.errors import AppError
from tutorapp.notifications.jobs import RESEND
from tutorapp.webhooks import service as inbox

FEEDBACK_TYPES = {"email.bounced", "email.complained"}

router = APIRouter(tags=["webhooks"])


# Like every signed endpoint here: no valid signature is 401, whoever calls.
class InvalidWebhookSignature(AppError):
    status, type, title = 401, "/problems/invalid-webhook-signature", "Invalid webhook signature"


class WebhookNotConfigured(AppError):
    """Without the secret no delivery can be verified (Resend retries them later)."""

    status, type, title = 401, "/problems/webhook-not-configured", "Webhook not configured"


async def verified_resend_event(request: Request) -> tuple[str, dict[str, Any]]:
    """The Svix message id and the event, once the signature checked out."""
    secret = request.app.state.settings.resend_webhook_secret
    if not secret:
        raise WebhookNotConfigured("Set TUTORAPP_RESEND_WEBHOOK_SECRET to receive Resend events.")
    body = await request.body()
    headers = {name: request.headers.get(name, "")
               for name in ("svix-id", "svix-timestamp", "svix-signature")}
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError as exc:
        raise InvalidWebhookSignature(str(exc) or "Signature mismatch.") from exc
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidWebhookSignature("The signed body is not JSON.") from exc
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise InvalidWebhookSignature("The event has no type.")
    return headers["svix-id"], event


ResendEvent = Annotated[tuple[str, dict[str, Any]], Depends(verified_resend_event)]


@router.post("/webhooks/resend", dependencies=[PUBLIC])
async def resend_webhook(event: ResendEvent, session: SessionDep) -> dict[str, Any]:
    message_id, payload = event
    if payload["type"] not in FEEDBACK_TYPES:
        return {"received": True, "handled": False}
    data = payload.get("data")
    if not isinstance(data, dict):
        data = {}
    _, new = await inbox.store(session, provider=RESEND, dedupe_key=message_id,
                               event_name=payload["type"], resource_type="email",
                               resource_id=str(data.get("email_id") or ""), payload=payload)
    return {"received": True, "handled": True, "duplicate": not new}
