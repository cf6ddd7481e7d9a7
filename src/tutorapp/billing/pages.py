"""The sandbox provider's pages: a local checkout and a customer portal.

They are mounted only with `TUTORAPP_PAYMENTS_PROVIDER=sandbox` (which staging and
prod refuse). Only the user who started the checkout sees and pays it, and only the
subscriber uses their portal (anyone else gets 404); their forms carry the session's
CSRF token. Paying, and each portal action, make the sandbox emit signed Lemon
Squeezy webhooks to our own `/webhooks/lemonsqueezy` after commit."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from tutorapp.auth.deps import CurrentPrincipal, Principal
from tutorapp.billing import plans
from tutorapp.billing.api import calling, provider_for
from tutorapp.core.db import SessionDep
from tutorapp.core.errors import NotFound
from tutorapp.integrations.payments.sandbox import SandboxProvider

router = APIRouter(prefix="/billing/sandbox", include_in_schema=False)
PORTAL_ACTIONS = ("renew", "fail", "recover", "cancel", "resume")


def _sandbox(request: Request, session: SessionDep) -> SandboxProvider:
    provider = provider_for(request, session)
    if not isinstance(provider, SandboxProvider):
        raise NotFound("The payments sandbox is off.")
    return provider


def _owned(found: dict[str, Any], principal: Principal, what: str) -> dict[str, Any]:
    """The object, if the caller started it (its custom data names them); else 404,
    so an id seen elsewhere reveals nothing and pays nothing."""
    custom = found.get("custom") or {}
    if str(custom.get("user_id")) != str(principal.id):
        raise NotFound(f"No such {what} in this store.")
    return found


async def _own_checkout(sandbox: SandboxProvider, checkout_id: str,
                        principal: Principal) -> dict[str, Any]:
    return _owned(await calling(sandbox.checkout(checkout_id)), principal, "checkout")


async def _own_subscription(sandbox: SandboxProvider, subscription_id: str,
                            principal: Principal) -> dict[str, Any]:
    return _owned(await calling(sandbox.subscription(subscription_id)), principal,
                  "subscription")


@router.get("/checkout/{checkout_id}", response_class=HTMLResponse)
async def checkout_page(checkout_id: str, request: Request, session: SessionDep,
                        principal: CurrentPrincipal) -> HTMLResponse:
    sandbox = _sandbox(request, session)
    checkout = await _own_checkout(sandbox, checkout_id, principal)
    plan = plans.by_variant(request.app.state.settings, checkout["variant_id"])
    return request.app.state.templates.TemplateResponse(
        request, "billing/sandbox_checkout.html",
        {"checkout": checkout, "checkout_id": checkout_id, "plan": plan},
    )


@router.post("/checkout/{checkout_id}/pay")
async def pay(checkout_id: str, request: Request, session: SessionDep,
              principal: CurrentPrincipal) -> RedirectResponse:
    """Pay with the sandbox's test card: the webhooks go out after commit. The
    access rule checked the form's CSRF token (a signed-in browser)."""
    sandbox = _sandbox(request, session)
    checkout = await _own_checkout(sandbox, checkout_id, principal)
    await calling(sandbox.pay(checkout_id))
    return RedirectResponse(checkout.get("redirect_url") or "/", status_code=303)


@router.get("/portal/{subscription_id}", response_class=HTMLResponse)
async def portal_page(subscription_id: str, request: Request, session: SessionDep,
                      principal: CurrentPrincipal) -> HTMLResponse:
    sandbox = _sandbox(request, session)
    await _own_subscription(sandbox, subscription_id, principal)
    subscription = await calling(sandbox.get_subscription(subscription_id))
    return request.app.state.templates.TemplateResponse(
        request, "billing/sandbox_portal.html",
        {"subscription": subscription, "subscription_id": subscription_id,
         "actions": PORTAL_ACTIONS},
    )


@router.post("/portal/{subscription_id}/{action}")
async def portal_action(subscription_id: str, action: str, request: Request,
                        session: SessionDep, principal: CurrentPrincipal) -> RedirectResponse:
    """Simulate what happens at the provider: a renewal, a failed and a recovered
    charge, a cancellation, a resumption."""
    sandbox = _sandbox(request, session)
    await _own_subscription(sandbox, subscription_id, principal)
    handlers = {
        "renew": sandbox.renew, "fail": sandbox.fail_payment, "recover": sandbox.recover_payment,
        "cancel": sandbox.cancel_subscription, "resume": sandbox.resume_subscription,
    }
    if action not in handlers:
        raise NotFound("No such sandbox action.")
    await calling(handlers[action](subscription_id))
    return RedirectResponse(f"/billing/sandbox/portal/{subscription_id}", status_code=303)
