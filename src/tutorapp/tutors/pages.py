"""The tutor's profile editor: one form (subjects with levels, languages, rate,
lesson lengths, booking policy), a live Markdown preview, and "send for review"."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.auth.deps import TutorPrincipal
from tutorapp.core.db import SessionDep
from tutorapp.core.errors import AppError
from tutorapp.core.pages import form_failed, parse_form, render
from tutorapp.tutors import schemas, service
from tutorapp.tutors.models import Level

router = APIRouter(include_in_schema=False)
LENGTHS = (30, 45, 60, 90)
LABELS = {"bio_markdown": "About you", "headline": "Headline", "subjects": "Subjects and levels",
          "lesson_lengths": "Lesson lengths", "time_zone": "Your time zone",
          "meeting_link": "Meeting link", "languages": "Languages",
          "display_name": "Name shown to students",
          "free_cancellation_hours": "Free cancellation"}


async def _editor_context(session: AsyncSession, principal: Any,
                          values: dict[str, Any] | None = None) -> dict[str, Any]:
    profile = await service.profile_of_user(session, principal.id)
    shown = await service.present(session, profile, own=True) if profile else None
    if values is None:
        values = {
            "display_name": shown.display_name if shown else principal.user.display_name,
            "headline": shown.headline if shown else "",
            "bio_markdown": shown.bio_markdown if shown else "",
            "time_zone": shown.time_zone if shown else principal.user.time_zone,
            "meeting_link": (shown.meeting_link or "") if shown else "",
            "lesson_lengths": shown.lesson_lengths if shown else [60],
            "requires_approval": shown.requires_approval if shown else False,
            "free_cancellation_hours": shown.free_cancellation_hours if shown else 24,
            "subjects": {str(s.subject_id): s.level.value for s in shown.subjects} if shown else {},
            "languages": [lang.code for lang in shown.languages] if shown else [],
        }
    return {"profile": profile, "shown": shown, "values": values,
            "subjects": await service.list_subjects(session),
            "languages": await service.list_languages(session),
            "levels": [level.value for level in Level], "lengths": LENGTHS,
            "bio_preview": service.render_markdown(values.get("bio_markdown", ""))}


@router.get("/app/profile")
async def editor(request: Request, principal: TutorPrincipal, session: SessionDep) -> Response:
    return render(request, "app/profile.html", **await _editor_context(session, principal))


def _values_from(form: Any) -> dict[str, Any]:
    subjects = {}
    for key in form:
        if key.startswith("subject_") and form.get(key):
            subjects[key.removeprefix("subject_")] = form.get(key)
    return {
        "display_name": (form.get("display_name") or "").strip(),
        "headline": (form.get("headline") or "").strip(),
        "bio_markdown": form.get("bio_markdown") or "",
        "time_zone": (form.get("time_zone") or "UTC").strip(),
        "meeting_link": (form.get("meeting_link") or "").strip(),
        "lesson_lengths": [int(v) for v in form.getlist("lesson_lengths") if v.isdigit()],
        "requires_approval": form.get("requires_approval") == "on",
        "free_cancellation_hours": (form.get("free_cancellation_hours") or "24").strip(),
        "subjects": subjects,
        "languages": form.getlist("languages"),
    }


def _profile_in(values: dict[str, Any]) -> schemas.ProfileIn:
    """The form through the API's schema: same limits, refusals in the form's words."""
    return parse_form(schemas.ProfileIn, {
        "display_name": values["display_name"] or None, "headline": values["headline"],
        "bio_markdown": values["bio_markdown"],
        "subjects": [{"subject_id": sid, "level": level}
                     for sid, level in values["subjects"].items()],
        "languages": values["languages"], "time_zone": values["time_zone"],
        "meeting_link": values["meeting_link"] or None,
        "lesson_lengths": values["lesson_lengths"],
        "requires_approval": values["requires_approval"],
        "free_cancellation_hours": values["free_cancellation_hours"] or 24,
    }, labels=LABELS)


@router.post("/app/profile")
async def save(request: Request, principal: TutorPrincipal, session: SessionDep) -> Response:
    form = await request.form()
    values = _values_from(form)
    try:
        await service.save_profile(session, principal.user, _profile_in(values),
                                   settings=request.app.state.settings)
        if form.get("submit_for_review") == "1":
            await service.submit(session, principal.user)
    except AppError as error:
        context = await _editor_context(session, principal, values)
        return await form_failed(session, request, "app/profile.html", error, labels=LABELS,
                                 **context)
    return RedirectResponse("/app/profile?saved=1", status_code=303)


@router.post("/app/profile/preview")
async def preview(request: Request, principal: TutorPrincipal) -> Response:
    """The bio as students will see it (HTMX swaps it under the editor)."""
    form = await request.form()
    html = service.render_markdown(str(form.get("bio_markdown") or ""))
    return render(request, "app/_bio_preview.html", bio_preview=html)
