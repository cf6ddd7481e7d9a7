"""The back office under /admin (admin role with a TOTP-verified session).

Tutor approvals, users and roles, bookings, subscriptions and the ledger, the
webhook inbox (dead and failing events, with a retry button), the audit log; job runs live at /admin/jobs (the jobs domain). Every destructive
action goes through a confirmation page (GET shows what will happen, POST does it)
and the service it calls writes the audit row."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from tutorapp.accounts import service as accounts
from tutorapp.accounts.api import client_of
from tutorapp.auth.deps import AdminPrincipal
from tutorapp.auth.roles import Role
from tutorapp.core import audit
from tutorapp.core.db import SessionDep
from tutorapp.core.deps import clock
from tutorapp.core.errors import AppError, InvalidInput
from tutorapp.core.pages import form_failed, parse_form, render
from tutorapp.scheduling import bookings
from tutorapp.scheduling import schemas as scheduling_schemas
from tutorapp.site.app_pages import describe
from tutorapp.tutors import schemas as tutor_schemas
from tutorapp.tutors import service as tutors
from tutorapp.tutors.models import ProfileStatus

router = APIRouter(prefix="/admin", include_in_schema=False)
PAGE = 50


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("")
async def overview(request: Request, admin: AdminPrincipal, session: SessionDep) -> Response:
    counts = {
        "submitted": await tutors.count_by_status(session, ProfileStatus.submitted),
        "tutors": await tutors.count_by_status(session, ProfileStatus.approved),
        "users": await accounts.count_users(session),
        "bookings": await bookings.count_all(session),
    }
    return render(request, "admin/overview.html", section="overview", counts=counts)


# --- tutor approvals -------------------------------------------------------------------


@router.get("/tutors")
async def tutor_queue(request: Request, admin: AdminPrincipal, session: SessionDep,
                      status: str = "submitted") -> Response:
    chosen = ProfileStatus(status) if status in ProfileStatus.__members__ else ProfileStatus.submitted
    profiles = [await tutors.present(session, p, own=True)
                for p in await tutors.list_by_status(session, chosen)]
    return render(request, "admin/tutors.html", section="tutors", profiles=profiles,
                  status=chosen.value, statuses=[s.value for s in ProfileStatus])


@router.post("/tutors/{profile_id}/approve")
async def approve(request: Request, profile_id: uuid.UUID, admin: AdminPrincipal,
                  session: SessionDep) -> Response:
    await tutors.approve(session, profile_id, admin_id=admin.id)
    return see_other("/admin/tutors?approved=1")


@router.get("/tutors/{profile_id}/reject")
async def reject_confirm(request: Request, profile_id: uuid.UUID, admin: AdminPrincipal,
                         session: SessionDep) -> Response:
    profile = await tutors.get_profile(session, profile_id, viewer=admin.user)
    return render(request, "admin/confirm.html", section="tutors",
                  title=f"Reject {profile.display_name}'s profile?",
                  consequence="The tutor sees your reason and can edit and resubmit the profile. "
                              "It stays unpublished.",
                  action=f"/admin/tutors/{profile_id}/reject", button="Reject profile",
                  back="/admin/tutors", reason_label="Reason shown to the tutor",
                  reason_required=True)


REASON = {"reason": "Reason"}


@router.post("/tutors/{profile_id}/reject")
async def reject(request: Request, profile_id: uuid.UUID, admin: AdminPrincipal,
                 session: SessionDep, reason: Annotated[str, Form()] = "") -> Response:
    try:
        data = parse_form(tutor_schemas.RejectIn, {"reason": reason},
                          labels={"reason": "Reason shown to the tutor"})
        await tutors.reject(session, profile_id, admin_id=admin.id, reason=data.reason)
    except AppError as error:
        return await form_failed(session, request, "admin/confirm.html", error, section="tutors",
                                 title="Reject the profile?", consequence="",
                                 action=f"/admin/tutors/{profile_id}/reject",
                                 button="Reject profile", back="/admin/tutors",
                                 reason_label="Reason shown to the tutor", reason_required=True)
    return see_other("/admin/tutors?rejected=1")


# --- users and roles -------------------------------------------------------------------


@router.get("/users")
async def users(request: Request, admin: AdminPrincipal, session: SessionDep,
                q: str = "", role: str = "", page: int = 0) -> Response:
    chosen = Role(role) if role in Role.__members__ else None
    rows = await accounts.list_users(session, role=chosen, query=q.strip() or None, limit=PAGE,
                                     offset=max(page, 0) * PAGE)
    return render(request, "admin/users.html", section="users", users=rows, q=q,
                  role=role, roles=[r.value for r in Role], page=max(page, 0), more=len(rows) == PAGE)


@router.get("/users/{user_id}/role")
async def role_confirm(request: Request, user_id: uuid.UUID, admin: AdminPrincipal,
                       session: SessionDep, role: str = "") -> Response:
    user = await accounts.get_user(session, user_id)
    if role not in Role.__members__:
        return see_other("/admin/users")
    return render(request, "admin/confirm.html", section="users",
                  title=f"Make {user.display_name} {'an' if role == 'admin' else 'a'} {role}?",
                  consequence=f"{user.display_name} ({user.email or 'no email'}) is now a "
                              f"{user.role.value}. Their access changes at their next request.",
                  action=f"/admin/users/{user_id}/role", button=f"Change role to {role}",
                  back="/admin/users", hidden={"role": role})


@router.post("/users/{user_id}/role")
async def role_change(request: Request, user_id: uuid.UUID, admin: AdminPrincipal,
                      session: SessionDep, role: Annotated[str, Form()]) -> Response:
    try:
        if role not in Role.__members__:
            raise InvalidInput("role", "no such role")
        await accounts.change_role(session, admin.user, user_id, Role(role),
                                   ip=client_of(request).ip)
    except AppError as error:
        return await form_failed(session, request, "admin/confirm.html", error, section="users",
                                 title="Change the role?", consequence="",
                                 action=f"/admin/users/{user_id}/role", button="Change role",
                                 back="/admin/users", hidden={"role": role})
    return see_other("/admin/users?changed=1")


# --- bookings ---------------------------------------------------------------------------


@router.get("/bookings")
async def booking_list(request: Request, admin: AdminPrincipal, session: SessionDep,
                       page: int = 0) -> Response:
    rows = await bookings.latest(session, limit=PAGE, offset=max(page, 0) * PAGE)
    return render(request, "admin/bookings.html", section="bookings",
                  rows=await describe(session, rows), zone=admin.user.time_zone,
                  page=max(page, 0), more=len(rows) == PAGE, open_statuses=bookings.OPEN_STATUSES)


@router.get("/bookings/{booking_id}/cancel")
async def booking_cancel_confirm(request: Request, booking_id: uuid.UUID, admin: AdminPrincipal,
                                 session: SessionDep) -> Response:
    booking = await bookings.get_for(session, booking_id, admin.user)
    (row,) = await describe(session, [booking])
    return render(request, "admin/confirm.html", section="bookings",
                  title="Cancel this booking?",
                  consequence=f"{row['tutor_name']} with {row['student_name']}. An admin's "
                              "cancellation always refunds: the credit goes back to the wallet, "
                              "and both sides are told.",
                  action=f"/admin/bookings/{booking_id}/cancel", button="Cancel booking",
                  back="/admin/bookings", reason_label="Reason (shown to both sides)")


@router.post("/bookings/{booking_id}/cancel")
async def booking_cancel(request: Request, booking_id: uuid.UUID, admin: AdminPrincipal,
                         session: SessionDep, reason: Annotated[str, Form()] = "") -> Response:
    try:
        data = parse_form(scheduling_schemas.CancelIn, {"reason": reason}, labels=REASON)
        await bookings.cancel(session, booking_id, admin.user, now=clock(request),
                              reason=data.reason or "cancelled by an admin")
    except AppError as error:
        return await form_failed(session, request, "admin/confirm.html", error,
                                 section="bookings", title="Cancel this booking?",
                                 consequence="", action=f"/admin/bookings/{booking_id}/cancel",
                                 button="Cancel booking", back="/admin/bookings")
    return see_other("/admin/bookings?cancelled=1")


# --- subscriptions and ledger ------------------------------------------------------------


@router.get("/billing")
async def billing(request: Request, admin: AdminPrincipal, session: SessionDep,
                  user: str = "") -> Response:
    from tutorapp.billing import credits, ledger, repository

    subs = await repository.latest_subscriptions(session, limit=PAGE)
    owners = await accounts.users_by_ids(session, (s.user_id for s in subs))
    context: dict[str, Any] = {"subs": subs, "owners": owners, "who": None, "entries": [],
                               "trial": await ledger.trial_balance(session)}
    if user:
        try:
            who = await accounts.get_user(session, uuid.UUID(user))
        except (ValueError, AppError):
            who = None
        if who is not None:
            wallet = await repository.wallet_of(session, who)
            accounts_of = [ledger.tutor_pending(who.id), ledger.tutor_payable(who.id)]
            if wallet is not None:
                accounts_of.append(ledger.wallet(wallet.id))
                context["credits"] = await credits.available(session, wallet.id, clock(request))
            context["who"] = who
            context["entries"] = await ledger.entries_of(session, accounts_of, limit=200)
    return render(request, "admin/billing.html", section="billing", zone=admin.user.time_zone,
                  **context)


# --- webhook inbox -------------------------------------------------------------------------


@router.get("/webhooks")
async def webhook_inbox(request: Request, admin: AdminPrincipal, session: SessionDep,
                        show: str = "failing") -> Response:
    """Events that are dead or failing (or every recent one), with a retry button."""
    from tutorapp.webhooks import service as inbox

    events = await inbox.listing(session, failing=show != "all", limit=PAGE)
    return render(request, "admin/webhooks.html", section="webhooks", events=events, show=show,
                  zone=admin.user.time_zone, retried=request.query_params.get("retried"))


@router.post("/webhooks/{event_id}/retry")
async def webhook_retry(request: Request, event_id: uuid.UUID, admin: AdminPrincipal,
                        session: SessionDep) -> Response:
    from tutorapp.webhooks import service as inbox

    await inbox.retry(session, event_id, actor_id=admin.id)
    return see_other("/admin/webhooks?retried=1")


# --- audit log ---------------------------------------------------------------------------


@router.get("/audit")
async def audit_log(request: Request, admin: AdminPrincipal, session: SessionDep,
                    action: str = "", page: int = 0) -> Response:
    rows = await audit.listing(session, action_prefix=action.strip(), limit=PAGE,
                               offset=max(page, 0) * PAGE)
    actors = await accounts.users_by_ids(session, (r.actor_id for r in rows if r.actor_id))
    return render(request, "admin/audit.html", section="audit", rows=rows, actors=actors,
                  action=action, page=max(page, 0), more=len(rows) == PAGE,
                  zone=admin.user.time_zone)

