"""Catalogue and tutor profiles: the only writer of their tables.

Profile workflow: draft -> submitted -> approved | rejected (with a reason), decided by
an admin. Only approved profiles are public. Editing a rejected profile puts it back
to draft; editing an approved one keeps it public.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Literal, overload

import nh3
from markdown_it import MarkdownIt
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.accounts.service import register_eraser, register_exporter, row_dict
from tutorapp.auth.roles import Role
from tutorapp.config import Settings
from tutorapp.core.audit import record
from tutorapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from tutorapp.core.time import utcnow
from tutorapp.tutors import schemas
from tutorapp.tutors.models import (
    Language,
    ProfileStatus,
    Subject,
    TutorLanguage,
    TutorProfile,
    TutorSubject,
)

# --- Markdown -------------------------------------------------------------------------


@cache
def _markdown() -> MarkdownIt:
    # Raw HTML in the source is not passed through; nh3 then cleans what remains.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).disable("image")


def render_markdown(source: str) -> str:
    html = _markdown().render(source)
    return nh3.clean(html, link_rel="nofollow noopener noreferrer ugc",
                     url_schemes={"http", "https", "mailto"})


# --- catalogue ------------------------------------------------------------------------


async def create_subject(session: AsyncSession, data: schemas.SubjectIn, *,
                         actor_id: uuid.UUID) -> Subject:
    path = data.slug
    if data.parent_id is not None:
        parent = await session.get(Subject, data.parent_id)
        if parent is None:
            raise InvalidInput("parent_id", "no such subject")
        path = f"{parent.path}/{data.slug}"
    if await session.scalar(select(Subject.id).where(Subject.path == path)):
        raise Conflict(f"The subject {path!r} exists already.")
    subject = Subject(slug=data.slug, name=data.name, parent_id=data.parent_id, path=path)
    session.add(subject)
    await session.flush()
    await record(session, "subject.created", subject_type="subject", subject_id=subject.id,
                 actor_id=actor_id, path=path)
    return subject


async def list_subjects(session: AsyncSession) -> Sequence[Subject]:
    return (await session.scalars(select(Subject).order_by(Subject.path))).all()


async def create_language(session: AsyncSession, data: schemas.LanguageIn, *,
                          actor_id: uuid.UUID) -> Language:
    if await session.scalar(select(Language.id).where(Language.code == data.code)):
        raise Conflict(f"The language {data.code!r} exists already.")
    language = Language(code=data.code, name=data.name)
    session.add(language)
    await session.flush()
    await record(session, "language.created", subject_type="language", subject_id=language.id,
                 actor_id=actor_id, code=data.code)
    return language


async def list_languages(session: AsyncSession) -> Sequence[Language]:
    return (await session.scalars(select(Language).order_by(Language.code))).all()


# --- profiles -------------------------------------------------------------------------


async def profile_of_user(session: AsyncSession, user_id: uuid.UUID) -> TutorProfile | None:
    return await session.scalar(select(TutorProfile).where(TutorProfile.user_id == user_id))


async def own_profile(session: AsyncSession, user_id: uuid.UUID) -> TutorProfile:
    profile = await profile_of_user(session, user_id)
    if profile is None:
        raise NotFound("You have no tutor profile yet: PUT /api/v1/tutors/me creates it.")
    return profile


async def get_profile(session: AsyncSession, profile_id: uuid.UUID, *,
                      viewer: User | None = None) -> TutorProfile:
    """A profile the viewer may see: approved ones, or their own, or any for an admin."""
    profile = await session.get(TutorProfile, profile_id)
    if profile is None or not (
        profile.status == ProfileStatus.approved
        or (viewer is not None and (viewer.id == profile.user_id or viewer.role == Role.admin))
    ):
        raise NotFound("No such tutor.")
    return profile


async def save_profile(session: AsyncSession, user: User, data: schemas.ProfileIn, *,
                       settings: Settings) -> TutorProfile:
    if user.role != Role.tutor:
        raise Forbidden("Only tutors have a tutor profile.")
    profile = await profile_of_user(session, user.id)
    created = profile is None
    if profile is None:
        profile = TutorProfile(
            user_id=user.id, time_zone=data.time_zone, status=ProfileStatus.draft,
            buffer_minutes=settings.default_buffer_minutes,
            min_notice_minutes=settings.default_min_notice_minutes,
            horizon_days=settings.default_horizon_days,
            free_cancellation_hours=settings.default_free_cancellation_hours,
            rating_sum=0, rating_count=0, rating_avg=0.0,
        )
        session.add(profile)
    profile.display_name = data.display_name or user.display_name
    profile.headline = data.headline
    profile.bio_markdown = data.bio_markdown
    profile.bio_html = render_markdown(data.bio_markdown)
    profile.time_zone = data.time_zone
    profile.meeting_link = data.meeting_link
    profile.photo_ref = data.photo_ref
    profile.lesson_lengths = list(data.lesson_lengths)
    profile.requires_approval = data.requires_approval
    for field in ("buffer_minutes", "min_notice_minutes", "horizon_days",
                  "free_cancellation_hours"):
        if (value := getattr(data, field)) is not None:
            setattr(profile, field, value)
    if profile.status == ProfileStatus.rejected:
        profile.status = ProfileStatus.draft
    await session.flush()

    # subjects and languages: replace the sets
    subject_rows = {}
    if data.subjects:
        ids = {s.subject_id for s in data.subjects}
        subject_rows = {s.id: s for s in await session.scalars(select(Subject).where(Subject.id.in_(ids)))}
        if missing := ids - subject_rows.keys():
            raise InvalidInput("subjects", f"unknown subject ids: {sorted(map(str, missing))}")
    language_rows = {}
    if data.languages:
        language_rows = {
            lang.code: lang
            for lang in await session.scalars(select(Language).where(Language.code.in_(data.languages)))
        }
        if missing_codes := set(data.languages) - language_rows.keys():
            raise InvalidInput("languages", f"unknown language codes: {sorted(missing_codes)}")
    for row in await session.scalars(select(TutorSubject).where(TutorSubject.tutor_id == profile.id)):
        await session.delete(row)
    for language_row in await session.scalars(
            select(TutorLanguage).where(TutorLanguage.tutor_id == profile.id)):
        await session.delete(language_row)
    await session.flush()
    for pair in {(s.subject_id, s.level) for s in data.subjects}:
        session.add(TutorSubject(tutor_id=profile.id, subject_id=pair[0], level=pair[1]))
    for code in set(data.languages):
        session.add(TutorLanguage(tutor_id=profile.id, language_id=language_rows[code].id))
    profile.search_text = await _search_text(session, profile, list(subject_rows.values()))
    try:
        await session.flush()
    except IntegrityError as exc:  # pragma: no cover - two saves of one new profile at once
        raise Conflict("The profile was changed concurrently; try again.") from exc
    await record(session, "tutor_profile.created" if created else "tutor_profile.updated",
                 subject_type="tutor_profile", subject_id=profile.id, actor_id=user.id)
    return profile


async def _search_text(session: AsyncSession, profile: TutorProfile,
                       subjects: list[Subject]) -> str:
    """Headline, bio and the names of the subjects and their ancestors."""
    names: list[str] = []
    paths = {s.path for s in subjects}
    ancestors = {p.rsplit("/", i)[0] for p in paths for i in range(p.count("/") + 1)}
    if ancestors:
        names = list(await session.scalars(
            select(Subject.name).where(Subject.path.in_(ancestors)).order_by(Subject.path)
        ))
    return "\n".join([profile.display_name, profile.headline, profile.bio_markdown, " ".join(names)])


async def submit(session: AsyncSession, user: User) -> TutorProfile:
    profile = await own_profile(session, user.id)
    if profile.status not in (ProfileStatus.draft, ProfileStatus.rejected):
        raise Conflict(f"A profile that is {profile.status} cannot be submitted.")
    problems = []
    if not profile.headline.strip():
        problems.append("headline")
    if not profile.bio_markdown.strip():
        problems.append("bio_markdown")
    if not await session.scalar(select(TutorSubject.id).where(TutorSubject.tutor_id == profile.id).limit(1)):
        problems.append("subjects")
    if problems:
        raise InvalidInput(problems[0], f"fill in before submitting: {', '.join(problems)}")
    profile.status = ProfileStatus.submitted
    profile.submitted_at = utcnow()
    profile.rejection_reason = None
    await session.flush()
    await record(session, "tutor_profile.submitted", subject_type="tutor_profile",
                 subject_id=profile.id, actor_id=user.id)
    return profile


async def _decide(session: AsyncSession, profile_id: uuid.UUID, admin_id: uuid.UUID,
                  status: ProfileStatus, reason: str | None) -> TutorProfile:
    profile = await session.get(TutorProfile, profile_id, with_for_update=True)
    if profile is None:
        raise NotFound("No such tutor profile.")
    if profile.status != ProfileStatus.submitted:
        raise Conflict(f"Only a submitted profile can be decided; this one is {profile.status}.")
    profile.status = status
    profile.rejection_reason = reason
    profile.reviewed_at = utcnow()
    await session.flush()
    await record(session, f"tutor_profile.{status}", subject_type="tutor_profile",
                 subject_id=profile.id, actor_id=admin_id, reason=reason)
    return profile


async def approve(session: AsyncSession, profile_id: uuid.UUID, *, admin_id: uuid.UUID) -> TutorProfile:
    return await _decide(session, profile_id, admin_id, ProfileStatus.approved, None)


async def reject(session: AsyncSession, profile_id: uuid.UUID, *, admin_id: uuid.UUID,
                 reason: str) -> TutorProfile:
    return await _decide(session, profile_id, admin_id, ProfileStatus.rejected, reason)


async def list_by_status(session: AsyncSession, status: ProfileStatus) -> Sequence[TutorProfile]:
    return (await session.scalars(
        select(TutorProfile).where(TutorProfile.status == status)
        .order_by(TutorProfile.submitted_at, TutorProfile.id).limit(200)
    )).all()


async def count_by_status(session: AsyncSession, status: ProfileStatus) -> int:
    return await session.scalar(
        select(func.count()).select_from(TutorProfile).where(TutorProfile.status == status)) or 0


async def profiles_by_ids(session: AsyncSession,
                          ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, TutorProfile]:
    wanted = set(ids)
    if not wanted:
        return {}
    return {p.id: p for p in await session.scalars(
        select(TutorProfile).where(TutorProfile.id.in_(wanted)))}


async def featured(session: AsyncSession, *, limit: int) -> Sequence[TutorProfile]:
    """The best-rated approved tutors, for the landing page."""
    return (await session.scalars(
        select(TutorProfile).where(TutorProfile.status == ProfileStatus.approved)
        .order_by(TutorProfile.rating_avg.desc(), TutorProfile.rating_count.desc(),
                  TutorProfile.id).limit(limit)
    )).all()


async def public_profile_dates(session: AsyncSession, *,
                               limit: int) -> Sequence[tuple[uuid.UUID, datetime | None]]:
    """(id, last change) of each approved profile, for the sitemap."""
    rows = await session.execute(
        select(TutorProfile.id, TutorProfile.updated_at)
        .where(TutorProfile.status == ProfileStatus.approved).order_by(TutorProfile.id)
        .limit(limit))
    return [(profile_id, updated) for profile_id, updated in rows]


async def apply_rating(session: AsyncSession, tutor_id: uuid.UUID, *, add_stars: int,
                       add_count: int) -> None:
    """Adjust the rating in one UPDATE, so concurrent reviews never lose one."""
    await session.execute(
        update(TutorProfile).where(TutorProfile.id == tutor_id).values(
            rating_sum=TutorProfile.rating_sum + add_stars,
            rating_count=TutorProfile.rating_count + add_count,
        ).execution_options(synchronize_session=False)
    )
    await session.execute(
        update(TutorProfile).where(TutorProfile.id == tutor_id).values(
            rating_avg=TutorProfile.rating_sum * 1.0 / TutorProfile.rating_count,
        ).where(TutorProfile.rating_count > 0).execution_options(synchronize_session=False)
    )
    profile = await session.get(TutorProfile, tutor_id)
    if profile is not None:
        await session.refresh(profile)


# --- presentation ---------------------------------------------------------------------


async def subjects_of(session: AsyncSession, tutor_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[schemas.TutorSubjectOut]]:
    out: dict[uuid.UUID, list[schemas.TutorSubjectOut]] = {t: [] for t in tutor_ids}
    if not tutor_ids:
        return out
    rows = await session.execute(
        select(TutorSubject.tutor_id, TutorSubject.level, Subject.id, Subject.slug, Subject.name,
               Subject.path)
        .join(Subject, Subject.id == TutorSubject.subject_id)
        .where(TutorSubject.tutor_id.in_(tutor_ids))
        .order_by(Subject.path, TutorSubject.level)
    )
    for tutor_id, level, sid, slug, name, path in rows:
        out[tutor_id].append(schemas.TutorSubjectOut(subject_id=sid, slug=slug, name=name,
                                                     path=path, level=level))
    return out


async def languages_of(session: AsyncSession, tutor_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[schemas.LanguageOut]]:
    out: dict[uuid.UUID, list[schemas.LanguageOut]] = {t: [] for t in tutor_ids}
    if not tutor_ids:
        return out
    rows = await session.execute(
        select(TutorLanguage.tutor_id, Language.code, Language.name)
        .join(Language, Language.id == TutorLanguage.language_id)
        .where(TutorLanguage.tutor_id.in_(tutor_ids)).order_by(Language.code)
    )
    for tutor_id, code, name in rows:
        out[tutor_id].append(schemas.LanguageOut(code=code, name=name))
    return out


@overload
async def present(session: AsyncSession, profile: TutorProfile, *,
                  own: Literal[True]) -> schemas.OwnProfileOut: ...


@overload
async def present(session: AsyncSession, profile: TutorProfile, *,
                  own: bool = False) -> schemas.ProfileOut: ...


async def present(session: AsyncSession, profile: TutorProfile, *, own: bool = False) -> schemas.ProfileOut:
    subjects = (await subjects_of(session, [profile.id]))[profile.id]
    languages = (await languages_of(session, [profile.id]))[profile.id]
    public = schemas.ProfileOut(
        id=profile.id, display_name=profile.display_name, headline=profile.headline,
        bio_html=profile.bio_html, subjects=subjects, languages=languages,
        time_zone=profile.time_zone, photo_ref=profile.photo_ref,
        lesson_lengths=list(profile.lesson_lengths),
        rating=schemas.Rating(average=round(profile.rating_avg, 2), count=profile.rating_count),
        requires_approval=profile.requires_approval,
        free_cancellation_hours=profile.free_cancellation_hours,
    )
    if not own:
        return public
    return schemas.OwnProfileOut(
        **dict(public), bio_markdown=profile.bio_markdown, meeting_link=profile.meeting_link,
        status=profile.status, rejection_reason=profile.rejection_reason,
        submitted_at=profile.submitted_at, reviewed_at=profile.reviewed_at,
        buffer_minutes=profile.buffer_minutes, min_notice_minutes=profile.min_notice_minutes,
        horizon_days=profile.horizon_days,
    )


@register_exporter("tutor_profile")
async def export_profile(db: AsyncSession, user: User) -> dict | None:
    """The user's tutor profile, if any, for the privacy export."""
    profile = await db.scalar(select(TutorProfile).where(TutorProfile.user_id == user.id))
    return row_dict(profile) if profile else None


@register_eraser("tutor_profile")
async def withdraw_profile(db: AsyncSession, user: User) -> None:
    """A deleted tutor's profile leaves the directory and keeps no personal text."""
    profile = await db.scalar(select(TutorProfile).where(TutorProfile.user_id == user.id))
    if profile is None:
        return
    profile.status = ProfileStatus.draft
    profile.display_name = "Deleted user"
    profile.headline = profile.bio_markdown = profile.bio_html = profile.search_text = ""
    profile.meeting_link = profile.photo_ref = None
    await db.flush()
