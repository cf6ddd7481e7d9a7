"""Billing API: plans, checkout, wallet, subscriptions, invoices, lesson payment and
confirmation, tutor earnings, admin tools; and the Lemon Squeezy webhook."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Literal, TypeVar

import httpx
import orjson
from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.auth.deps import (
    PUBLIC,
    AdminPrincipal,
    Principal,
    StudentOrParent,
    TutorPrincipal,
)
from tutorapp.auth.roles import Role
from tutorapp.billing import (
    bookings,
    checkout,
    credits,
    earnings,
    ledger,
    payments,
    repository,
    schemas,
    subscriptions,
    webhooks,
)
from tutorapp.billing.models import Earning, Payout, Subscription, Wallet
from tutorapp.config import Settings
from tutorapp.core.db import SessionDep
from tutorapp.core.deps import SettingsDep, clock, settings_of
from tutorapp.core.errors import AppError, NotFound, Unauthorized
from tutorapp.integrations.payments import get_provider
from tutorapp.integrations.payments.base import (
    PaymentsError,
    PaymentsProvider,
    PaymentsRejected,
    signature_is_valid,
)

router = APIRouter(prefix="/api/v1/billing", tags=["billing"])
admin = APIRouter(prefix="/api/v1/admin/billing", tags=["admin"])
webhook = APIRouter(prefix="/webhooks", tags=["webhooks"], include_in_schema=False)
T = TypeVar("T")


class ProviderUnavailable(AppError):
    status, type, title = 503, "/problems/payments-unavailable", "Payments provider unavailable"


class ProviderRefused(AppError):
    status, type, title = 409, "/problems/payments-refused", "Payments provider refused"




def provider_for(request: Request, session: AsyncSession) -> PaymentsProvider:
    # The sandbox delivers its webhooks to this very app, in-process.
    return get_provider(settings_of(request), session,
                        transport=httpx.ASGITransport(app=request.app))


async def outside_transaction(session: AsyncSession, call: Awaitable[T]) -> T:
    """A provider call (up to its timeout) made with no transaction open: what the
    request did so far is committed first, so no row lock (and on SQLite, not the
    write lock) is held while the vendor answers. The session begins a new
    transaction on its next use."""
    await session.commit()
    return await calling(call)


async def calling(call: Awaitable[T]) -> T:
    """A provider call: retryable failures become 503, final ones 404/409."""
    try:
        return await call
    except PaymentsError as exc:
        headers = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after else None
        raise ProviderUnavailable("The payments provider is unavailable; try again shortly.",
                                  headers=headers) from exc
    except PaymentsRejected as exc:
        if exc.status == 404:
            raise NotFound(str(exc)) from exc
        raise ProviderRefused(str(exc)) from exc


def money(amount: int, currency: str) -> schemas.Money:
    return schemas.Money(amount_minor=amount, currency=currency)


def subscription_out(s: Subscription) -> schemas.SubscriptionOut:
    return schemas.SubscriptionOut(
        id=s.id, plan=s.plan_key, status=str(s.status), cancelled=s.cancelled,
        renews_at=s.renews_at, ends_at=s.ends_at, trial_ends_at=s.trial_ends_at,
        user_id=s.user_id,
    )


# --- customers ------------------------------------------------------------------------


@router.get("/plans", dependencies=[PUBLIC])
async def list_plans(settings: SettingsDep) -> list[schemas.PlanOut]:
    """The plan catalogue: subscriptions, packages and single lessons."""
    return [
        schemas.PlanOut(
            key=p.key, kind=p.kind, name=p.name, lessons=p.lessons,
            price=money(p.price_minor, p.currency),
            interval_months=p.interval_months if p.kind == "subscription" else None,
            expires_after_months=p.expires_after_months, rollover=p.rollover,
        )
        for p in settings.billing_plans
    ]


@router.post("/checkout", status_code=201)
async def create_checkout(body: schemas.CheckoutIn, request: Request, session: SessionDep,
                          caller: StudentOrParent, settings: SettingsDep) -> schemas.CheckoutOut:
    """Start a purchase: returns the provider's checkout URL to send the payer to."""
    return await start_checkout(request, session, caller.user, plan_key=body.plan,
                                booking_id=body.booking_id)


async def start_checkout(request: Request, session: AsyncSession, user: User, *, plan_key: str,
                         booking_id: uuid.UUID | None) -> schemas.CheckoutOut:
    """Check, ask the provider for a checkout outside the transaction, store it."""
    provider = provider_for(request, session)
    prepared = await checkout.prepare(session, settings_of(request), user, plan_key=plan_key,
                                      booking_id=booking_id)
    created = await outside_transaction(session, provider.create_checkout(prepared.request))
    started = await checkout.record(session, prepared, created, provider.name)
    return schemas.CheckoutOut(id=started.id, url=created.url, provider=started.provider)


async def wallet_out(session: AsyncSession, wallet: Wallet | None,
                     now: datetime) -> schemas.WalletOut:
    if wallet is None:
        return schemas.WalletOut(id=None, credits_available=0, balance=None, lots=[])
    lots = await repository.lots_of(session, wallet.id)
    return schemas.WalletOut(
        id=wallet.id, credits_available=await credits.available(session, wallet.id, now),
        balance=money(-await ledger.balance(session, ledger.wallet(wallet.id), wallet.currency),
                      wallet.currency),
        lots=[schemas.LotOut(id=lot.id, source=str(lot.source), plan=lot.plan_key,
                             granted=lot.granted, remaining=lot.remaining,
                             expires_at=lot.expires_at) for lot in lots],
    )


@router.get("/wallet")
async def get_wallet(request: Request, session: SessionDep,
                     caller: StudentOrParent) -> schemas.WalletOut:
    """The family wallet: spendable credits, prepaid balance and each lot of credits."""
    return await wallet_out(session, await repository.wallet_of(session, caller.user), clock(request))


@router.get("/subscriptions")
async def my_subscriptions(session: SessionDep,
                           caller: StudentOrParent) -> list[schemas.SubscriptionOut]:
    wallet = await repository.wallet_of(session, caller.user)
    if wallet is None:
        return []
    return [subscription_out(s) for s in await repository.subscriptions_of(session, wallet.id)]


@router.post("/subscriptions/{subscription_id}/cancel")
async def cancel_subscription(subscription_id: uuid.UUID, request: Request, session: SessionDep,
                              caller: StudentOrParent, settings: SettingsDep
                              ) -> schemas.SubscriptionOut:
    """Cancel at the end of the paid period: credits stay usable until `ends_at`."""
    return await _change_subscription(request, session, settings, caller, subscription_id,
                                      "cancel")


@router.post("/subscriptions/{subscription_id}/resume")
async def resume_subscription(subscription_id: uuid.UUID, request: Request, session: SessionDep,
                              caller: StudentOrParent, settings: SettingsDep
                              ) -> schemas.SubscriptionOut:
    """Undo a cancellation during the grace period."""
    return await _change_subscription(request, session, settings, caller, subscription_id,
                                      "resume")


async def _change_subscription(request: Request, session: AsyncSession, settings: Settings,
                               caller: Principal, subscription_id: uuid.UUID,
                               action: Literal["cancel", "resume"]) -> schemas.SubscriptionOut:
    """Check the caller's change, make it at the provider (outside the transaction),
    mirror the provider's answer."""
    subscription = await subscriptions.owned(session, subscription_id, caller.user)
    if action == "cancel":
        subscriptions.check_cancellable(subscription)
    else:
        subscriptions.check_resumable(subscription)
    provider = provider_for(request, session)
    change = provider.cancel_subscription if action == "cancel" else provider.resume_subscription
    attributes = await outside_transaction(session, change(subscription.provider_id))
    await subscriptions.apply_change(session, settings, subscription, attributes, caller.user,
                                     action=action)
    return subscription_out(subscription)


@router.get("/subscriptions/{subscription_id}/portal")
async def customer_portal(subscription_id: uuid.UUID, request: Request, session: SessionDep,
                          caller: StudentOrParent) -> schemas.PortalOut:
    """A fresh link to the provider's customer portal (payment method, invoices)."""
    subscription = await subscriptions.owned(session, subscription_id, caller.user)
    attributes = await outside_transaction(session, provider_for(request, session)
                                           .get_subscription(subscription.provider_id))
    return schemas.PortalOut(url=subscriptions.portal_url(attributes))


@router.get("/invoices")
async def my_invoices(session: SessionDep, caller: StudentOrParent) -> list[schemas.InvoiceOut]:
    """Every payment of the family wallet, newest first."""
    wallet = await repository.wallet_of(session, caller.user)
    if wallet is None:
        return []
    return [
        schemas.InvoiceOut(
            id=p.id, kind=p.kind, plan=p.plan_key, status=p.status,
            total=money(p.total_minor, p.currency), tax=money(p.tax_minor, p.currency),
            refunded=money(p.refunded_minor, p.currency), invoice_url=p.invoice_url,
            paid_at=p.paid_at,
        )
        for p in await payments.list_for_wallet(session, wallet.id)
    ]


@router.post("/bookings/{booking_id}/pay", responses={402: {"description": "no lesson credits left"}})
async def pay_booking(booking_id: uuid.UUID, request: Request, session: SessionDep,
                      caller: StudentOrParent) -> schemas.BookingPaidOut:
    """Pay a held booking with one credit of the family wallet (402 without credits)."""
    booking = await bookings.pay_with_credit(session, settings_of(request), booking_id,
                                             caller.user, now=clock(request))
    return schemas.BookingPaidOut(booking_id=booking.id, status=str(booking.status))


@router.post("/bookings/{booking_id}/confirm")
async def confirm_lesson(booking_id: uuid.UUID, request: Request, session: SessionDep,
                         caller: StudentOrParent) -> schemas.EarningOut:
    """The lesson took place: the tutor's earning becomes payable now."""
    earning = await earnings.confirm(session, booking_id, caller.user, now=clock(request))
    return earning_out(earning)


@router.post("/bookings/{booking_id}/dispute")
async def dispute_lesson(booking_id: uuid.UUID, body: schemas.DisputeIn, request: Request,
                         session: SessionDep, caller: StudentOrParent) -> schemas.EarningOut:
    """The lesson did not take place as booked: hold the earning for an admin."""
    earning = await earnings.dispute(session, booking_id, caller.user, reason=body.reason,
                                     now=clock(request))
    return earning_out(earning)


# --- tutors -----------------------------------------------------------------------------


def earning_out(e: Earning) -> schemas.EarningOut:
    return schemas.EarningOut(
        booking_id=e.booking_id, status=str(e.status), gross=money(e.gross_minor, e.currency),
        commission=money(e.commission_minor, e.currency), net=money(e.net_minor, e.currency),
        payable_at=e.payable_at, payout_id=e.payout_id,
    )


@router.get("/earnings")
async def my_earnings(session: SessionDep, tutor: TutorPrincipal) -> schemas.EarningsOut:
    """The tutor's earnings per lesson and what is pending and payable."""
    rows = await repository.earnings_of(session, tutor.id, limit=500)
    found = await ledger.balances(session, [ledger.tutor_pending(tutor.id),
                                            ledger.tutor_payable(tutor.id)])
    pending = [money(-v, c) for (a, c), v in found.items() if a.startswith("tutor_pending") and v]
    payable = [money(-v, c) for (a, c), v in found.items() if a.startswith("tutor_payable") and v]
    return schemas.EarningsOut(pending=pending, payable=payable,
                               earnings=[earning_out(e) for e in rows])


# --- admin ---------------------------------------------------------------------------------


@admin.get("/subscriptions")
async def all_subscriptions(session: SessionDep, _admin: AdminPrincipal,
                            status: str | None = None) -> list[schemas.SubscriptionOut]:
    return [subscription_out(s) for s in
            await repository.latest_subscriptions(session, limit=500, status=status)]


async def _accounts_of(session: AsyncSession, user: User) -> list[str]:
    if user.role == Role.tutor:
        return [ledger.tutor_pending(user.id), ledger.tutor_payable(user.id)]
    if user.role in (Role.student, Role.parent):
        wallet = await repository.wallet_of(session, user)
        return [ledger.wallet(wallet.id)] if wallet else []
    return []


@admin.get("/users/{user_id}/ledger")
async def user_ledger(user_id: uuid.UUID, session: SessionDep,
                      _admin: AdminPrincipal) -> schemas.LedgerOut:
    """The ledger lines of a user's accounts (a family's wallet, a tutor's earnings)."""
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    accounts = await _accounts_of(session, user)
    lines = await ledger.entries_of(session, accounts) if accounts else []
    totals = await ledger.balances(session, accounts) if accounts else {}
    return schemas.LedgerOut(
        user_id=user.id,
        accounts={f"{a} {c}": money(v, c) for (a, c), v in totals.items()},
        lines=[schemas.LedgerLineOut(transaction_id=t.id, kind=t.kind, description=t.description,
                                     account=p.account, amount=money(p.amount_minor, p.currency),
                                     at=t.created_at) for t, p in lines],
    )


@admin.post("/users/{user_id}/credits")
async def adjust_credits(user_id: uuid.UUID, body: schemas.CreditAdjustmentIn, request: Request,
                         session: SessionDep, caller: AdminPrincipal,
                         settings: SettingsDep) -> schemas.WalletOut:
    """Add or remove lesson credits by hand; the reason is kept in the audit trail."""
    user = await session.get(User, user_id)
    if user is None or user.role not in (Role.student, Role.parent):
        raise NotFound("No such student or parent.")
    wallet = await credits.wallet_for_owner(session, credits.wallet_owner_id(user),
                                            settings.billing_currency)
    await credits.adjust(session, wallet, delta=body.delta, reason=body.reason,
                         actor_id=caller.id, now=clock(request))
    return await wallet_out(session, wallet, clock(request))


@admin.post("/disputes/{booking_id}/resolve")
async def resolve_dispute(booking_id: uuid.UUID, body: schemas.ResolveIn, request: Request,
                          session: SessionDep, caller: AdminPrincipal) -> schemas.EarningOut:
    """Refund the credit to the family, or release the tutor's earning."""
    earning = await earnings.resolve(session, booking_id, caller.user, decision=body.decision,
                                     note=body.note, now=clock(request))
    return earning_out(earning)


async def _payout_out(session: AsyncSession, payout: Payout) -> schemas.PayoutOut:
    lines = await earnings.payout_lines(session, payout)
    return schemas.PayoutOut(
        id=payout.id, period=payout.period, status=str(payout.status), paid_at=payout.paid_at,
        lines=[schemas.PayoutLineOut(
            tutor_id=uuid.UUID(str(line["tutor_id"])), tutor_name=str(line["tutor_name"]),
            tutor_email=str(line["tutor_email"]), lessons=int(line["lessons"]),  # type: ignore[call-overload]
            amount=money(int(line["amount_minor"]), str(line["currency"])),  # type: ignore[call-overload]
        ) for line in lines],
    )


@admin.post("/payouts/{period}/run")
async def run_payout(period: str, request: Request, session: SessionDep,
                     caller: AdminPrincipal) -> schemas.PayoutOut:
    """Gather what is payable by the end of the period (`2026-11`) into its payout."""
    payout = await earnings.run_payout(session, period, now=clock(request), actor_id=caller.id)
    return await _payout_out(session, payout)


@admin.get("/payouts/{period}/csv")
async def payout_csv(period: str, session: SessionDep, _admin: AdminPrincipal) -> Response:
    """The payout as a CSV for the bank transfers."""
    payout = await repository.payout_by_period(session, period)
    if payout is None:
        raise NotFound(f"No payout run for {period}.")
    body = earnings.payout_csv(period, await earnings.payout_lines(session, payout))
    return Response(body, media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="payout-{period}.csv"'})


@admin.post("/payouts/{period}/paid")
async def payout_paid(period: str, request: Request, session: SessionDep,
                      caller: AdminPrincipal) -> schemas.PayoutOut:
    """The transfers were made: book them in the ledger."""
    payout = await earnings.mark_paid(session, period, now=clock(request), actor_id=caller.id)
    return await _payout_out(session, payout)


# --- the webhook -------------------------------------------------------------------------


async def signed_body(request: Request) -> bytes:
    """The raw body, if its `X-Signature` is the HMAC-SHA256 of it with our secret."""
    body = await request.body()
    if not signature_is_valid(settings_of(request).payments_webhook_secret, body,
                              request.headers.get("x-signature")):
        raise Unauthorized("Invalid or missing X-Signature.")
    return body


@webhook.post("/lemonsqueezy", dependencies=[PUBLIC])
async def lemonsqueezy_webhook(request: Request, session: SessionDep,
                               body: Annotated[bytes, Depends(signed_body)]) -> dict[str, str]:
    """Lemon Squeezy's events: stored once in the inbox, applied by a job after commit."""
    try:
        payload = webhooks.validate(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        raise webhooks.MalformedWebhook("The body is not JSON.") from exc
    sent = request.headers.get("x-event-name")
    if sent != payload["meta"]["event_name"]:
        raise webhooks.MalformedWebhook(
            "Missing X-Event-Name." if sent is None else
            f"X-Event-Name {sent[:64]!r} does not match the body's meta.event_name.")
    event_id, created = await webhooks.store(session, payload, body)
    return {"status": "stored" if created else "duplicate", "id": str(event_id)}


routers = [router, admin, webhook]
