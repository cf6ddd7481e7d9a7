"""Emails are rendered and stored in the same transaction as the change that causes
them (a transactional outbox); delivery happens after commit, never on rollback."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.core.templating import TEMPLATES_DIR
from tutorapp.notifications.models import EmailMessage


@cache
def email_environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR / "emails"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_email(template: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, html, text) of `emails/<template>.{subject.txt,html,txt}`."""
    env = email_environment()
    subject = env.get_template(f"{template}.subject.txt").render(context).strip()
    html = env.get_template(f"{template}.html").render(context, subject=subject)
    text = env.get_template(f"{template}.txt").render(context, subject=subject)
    return subject, html, text


async def enqueue_email(
    session: AsyncSession,
    *,
    to: str,
    template: str,
    context: dict[str, Any],
    user_id: uuid.UUID | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> EmailMessage:
    subject, html, text = render_email(template, context)
    message = EmailMessage(
        to_address=to.lower(), subject=subject, html=html, text=text, template=template,
        user_id=user_id, attachments=attachments or [],
    )
    session.add(message)
    await session.flush()
    return message
