"""JSON routes of the catalogue and tutor profiles (search by free time is
`scheduling.api.search_router`: it reads availability and bookings)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status

from tutorapp.auth.deps import PUBLIC, AdminPrincipal, OptionalPrincipal, TutorPrincipal
from tutorapp.core.db import ReadSessionDep, SessionDep
from tutorapp.tutors import schemas, service
from tutorapp.tutors.models import Level, ProfileStatus

router = APIRouter(prefix="/api/v1", tags=["catalogue & tutors"])


# --- catalogue --------------------------------------------------------------------


@router.get("/catalogue/subjects", dependencies=[PUBLIC])
async def list_subjects(session: ReadSessionDep) -> list[schemas.SubjectOut]:
    return [schemas.SubjectOut.model_validate(s, from_attributes=True)
            for s in await service.list_subjects(session)]


@router.post("/catalogue/subjects", status_code=status.HTTP_201_CREATED)
async def create_subject(body: schemas.SubjectIn, session: SessionDep,
                         admin: AdminPrincipal) -> schemas.SubjectOut:
    subject = await service.create_subject(session, body, actor_id=admin.id)
    return schemas.SubjectOut.model_validate(subject, from_attributes=True)


@router.get("/catalogue/levels", dependencies=[PUBLIC])
async def list_levels() -> list[str]:
    return [level.value for level in Level]


@router.get("/catalogue/languages", dependencies=[PUBLIC])
async def list_languages(session: ReadSessionDep) -> list[schemas.LanguageOut]:
    return [schemas.LanguageOut(code=lang.code, name=lang.name)
            for lang in await service.list_languages(session)]


@router.post("/catalogue/languages", status_code=status.HTTP_201_CREATED)
async def create_language(body: schemas.LanguageIn, session: SessionDep,
                          admin: AdminPrincipal) -> schemas.LanguageOut:
    language = await service.create_language(session, body, actor_id=admin.id)
    return schemas.LanguageOut(code=language.code, name=language.name)


# --- the tutor's own profile --------------------------------------------------------


@router.get("/tutors/me")
async def get_own_profile(session: SessionDep, tutor: TutorPrincipal) -> schemas.OwnProfileOut:
    profile = await service.own_profile(session, tutor.id)
    return await service.present(session, profile, own=True)


@router.put("/tutors/me")
async def save_own_profile(body: schemas.ProfileIn, request: Request, session: SessionDep,
                           tutor: TutorPrincipal) -> schemas.OwnProfileOut:
    profile = await service.save_profile(session, tutor.user, body,
                                         settings=request.app.state.settings)
    return await service.present(session, profile, own=True)


@router.post("/tutors/me/submit")
async def submit_own_profile(session: SessionDep, tutor: TutorPrincipal) -> schemas.OwnProfileOut:
    profile = await service.submit(session, tutor.user)
    return await service.present(session, profile, own=True)


# --- admin review -------------------------------------------------------------------


@router.get("/admin/tutors")
async def list_profiles_for_review(session: SessionDep, admin: AdminPrincipal,
                                   status: ProfileStatus = ProfileStatus.submitted,
                                   ) -> list[schemas.OwnProfileOut]:
    return [await service.present(session, p, own=True)
            for p in await service.list_by_status(session, status)]


@router.post("/admin/tutors/{tutor_id}/approve")
async def approve_profile(tutor_id: uuid.UUID, session: SessionDep,
                          admin: AdminPrincipal) -> schemas.OwnProfileOut:
    profile = await service.approve(session, tutor_id, admin_id=admin.id)
    return await service.present(session, profile, own=True)


@router.post("/admin/tutors/{tutor_id}/reject")
async def reject_profile(tutor_id: uuid.UUID, body: schemas.RejectIn, session: SessionDep,
                         admin: AdminPrincipal) -> schemas.OwnProfileOut:
    profile = await service.reject(session, tutor_id, admin_id=admin.id, reason=body.reason)
    return await service.present(session, profile, own=True)


# --- public profile -------------------------------------------------------------------


@router.get("/tutors/{tutor_id}")
async def get_profile(tutor_id: uuid.UUID, session: ReadSessionDep,
                      viewer: OptionalPrincipal) -> schemas.ProfileOut:
    profile = await service.get_profile(session, tutor_id,
                                        viewer=viewer.user if viewer else None)
    return await service.present(session, profile)
