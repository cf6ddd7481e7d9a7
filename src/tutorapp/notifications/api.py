"""Resend's webhooks: bounces and complaints feed the suppression list.

Resend signs each delivery the Svix way (`svix-id`, `svix-timestamp`,
`svix-signature`, secret `whsec_...`); `svix.Webhook.verify` checks the signature
and refuses a timestamp more than 5 minutes off. A verified event is stored once
per `svix-id` (a redelivery is acknowledged and ignored) and handled by the
`email.record_feedback` function after commit; the endpoint answers at once.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from svix.webhooks import Webhook, WebhookVerificationError

from tutorapp.accounts.deps import PUBLIC
from tutorapp.core.db import SessionDep
from tutorapp.core.errors import AppError
from tutorapp.core.fields import storable, storable_json
from tutorapp.jobs.engine import emit

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
    # a signed event is always stored: no NUL for PostgreSQL, the id cut to its column
    new = await emit(session, "resend.webhook", storable_json(payload),
                     event_id=storable(message_id, 200))
    return {"received": True, "handled": True, "duplicate": not new}
