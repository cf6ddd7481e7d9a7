"""The dev mailbox: every email the outbox holds, rendered, so a newcomer can
click the verification link. Mounted in the dev and test profiles only, with the
outbox mailer, and it answers only callers on this machine: its emails hold sign-in
and password-reset links, so a dev server bound to a public address must not hand
them to anyone who asks."""

from __future__ import annotations

import ipaddress
import uuid

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from tutorapp.auth.deps import PUBLIC
from tutorapp.core.db import ReadSessionDep
from tutorapp.core.errors import NotFound
from tutorapp.notifications import service
from tutorapp.notifications.models import EmailMessage


def local_callers_only(request: Request) -> None:
    """404 unless the caller (after trusted proxy headers) is a loopback address."""
    host = request.client.host if request.client else ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        raise NotFound("Not found.")


router = APIRouter(prefix="/dev/mailbox", include_in_schema=False,
                   dependencies=[PUBLIC, Depends(local_callers_only)])

# The message's own HTML, shown as a page of its own: inline styles only, no
# scripts, sandboxed.
EMAIL_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; "
             "frame-ancestors 'none'; sandbox allow-popups allow-top-navigation-by-user-activation")


@router.get("", response_class=HTMLResponse)
async def mailbox(request: Request, session: ReadSessionDep) -> HTMLResponse:
    messages = await service.recent_messages(session, limit=200)
    return request.app.state.templates.TemplateResponse(
        request, "dev/mailbox.html", {"messages": messages}
    )


async def _message(session: ReadSessionDep, message_id: uuid.UUID) -> EmailMessage:
    message = await session.get(EmailMessage, message_id)
    if message is None:
        raise NotFound("No such email in the outbox.")
    return message


@router.get("/{message_id}", response_class=HTMLResponse)
async def show(request: Request, message_id: uuid.UUID, session: ReadSessionDep
               ) -> HTMLResponse:
    message = await _message(session, message_id)
    return request.app.state.templates.TemplateResponse(
        request, "dev/mailbox_message.html", {"message": message}
    )


@router.get("/{message_id}/html", response_class=HTMLResponse)
async def show_html(message_id: uuid.UUID, session: ReadSessionDep) -> HTMLResponse:
    message = await _message(session, message_id)
    return HTMLResponse(message.html, headers={"Content-Security-Policy": EMAIL_CSP})
