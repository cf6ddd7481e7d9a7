"""The sandbox provider's pages: a local checkout and a customer portal.

They exist only with `TUTORAPP_PAYMENTS_PROVIDER=sandbox` (404 otherwise). Paying,
and each portal action, make the sandbox emit signed Lemon Squeezy webhooks to our
own `/webhooks/lemonsqueezy` after commit."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from tutorapp.accounts.deps import OptionalPrincipal
from tutorapp.billing import plans
from tutorapp.billing.api import calling, provider_for
from tutorapp.core.db import SessionDep
from tutorapp.core.errors import NotFound
from tutorapp.core.security import csrf_token
from tutorapp.integrations.payments.sandbox import SandboxProvider

router = APIRouter(prefix="/billing/sandbox", include_in_schema=False)
PORTAL_ACTIONS = ("renew", "fail", "recover", "cancel", "resume")


def _sandbox(request: Request, session: SessionDep) -> SandboxProvider:
    provider = provider_for(request, session)
    if not isinstance(provider, SandboxProvider):
        raise NotFound("The payments sandbox is off.")
    return provider


def _context(request: Request, principal: OptionalPrincipal) -> dict[str, object]:
    token = (csrf_token(request.app.state.settings, principal.session.id)
             if principal is not None else "")
    return {"principal": principal, "csrf_token": token}


@router.get("/checkout/{checkout_id}", response_class=HTMLResponse)
async def checkout_page(checkout_id: str, request: Request, session: SessionDep,
                        principal: OptionalPrincipal) -> HTMLResponse:
    sandbox = _sandbox(request, session)
    checkout = await calling(sandbox.checkout(checkout_id))
    plan = plans.by_variant(request.app.state.settings, checkout["variant_id"])
    return request.app.state.templates.TemplateResponse(
        request, "billing/sandbox_checkout.html",
        {**_context(request, principal), "checkout": checkout, "checkout_id": checkout_id,
         "plan": plan},
    )


@router.post("/checkout/{checkout_id}/pay")
async def pay(checkout_id: str, request: Request, session: SessionDep,
              principal: OptionalPrincipal) -> RedirectResponse:
    """Pay with the sandbox's test card: the webhooks go out after commit."""
    sandbox = _sandbox(request, session)
    checkout = await calling(sandbox.checkout(checkout_id))
    await calling(sandbox.pay(checkout_id))
    return RedirectResponse(checkout.get("redirect_url") or "/", status_code=303)


@router.get("/portal/{subscription_id}", response_class=HTMLResponse)
async def portal_page(subscription_id: str, request: Request, session: SessionDep,
                      principal: OptionalPrincipal) -> HTMLResponse:
    sandbox = _sandbox(request, session)
    subscription = await calling(sandbox.get_subscription(subscription_id))
    return request.app.state.templates.TemplateResponse(
        request, "billing/sandbox_portal.html",
        {**_context(request, principal), "subscription": subscription,
         "subscription_id": subscription_id, "actions": PORTAL_ACTIONS},
    )


@router.post("/portal/{subscription_id}/{action}")
async def portal_action(subscription_id: str, action: str, request: Request,
                        session: SessionDep, principal: OptionalPrincipal) -> RedirectResponse:
    """Simulate what happens at the provider: a renewal, a failed and a recovered
    charge, a cancellation, a resumption."""
    sandbox = _sandbox(request, session)
    handlers = {
        "renew": sandbox.renew, "fail": sandbox.fail_payment, "recover": sandbox.recover_payment,
        "cancel": sandbox.cancel_subscription, "resume": sandbox.resume_subscription,
    }
    if action not in handlers:
        raise NotFound("No such sandbox action.")
    await calling(handlers[action](subscription_id))
    return RedirectResponse(f"/billing/sandbox/portal/{subscription_id}", status_code=303)
