"""The plan catalogue: `TUTORAPP_BILLING_PLANS` (a JSON list; defaults in config.py).

The catalogue is configuration, not data: each plan is tied to a variant id that
exists only in the operator's Lemon Squeezy store, prices are set there, and a
deployment's plans change with its settings, so a table and an admin screen would
only add a second copy to keep in sync."""

from __future__ import annotations

from datetime import datetime

from tutorapp.config import BillingPlan, Settings
from tutorapp.core.errors import InvalidInput
from tutorapp.integrations.payments.sandbox import add_months


def by_key(settings: Settings, key: str) -> BillingPlan:
    for plan in settings.billing_plans:
        if plan.key == key:
            return plan
    raise InvalidInput("plan", f"no plan {key!r}; see GET /api/v1/billing/plans")


def by_variant(settings: Settings, variant_id: object) -> BillingPlan | None:
    for plan in settings.billing_plans:
        if str(plan.variant_id) == str(variant_id):
            return plan
    return None


def lot_expiry(plan: BillingPlan, paid_at: datetime) -> datetime | None:
    """When the credits of one purchase or paid period expire: subscriptions at the
    end of the period (unless they roll over), packages after `expires_after_months`."""
    if plan.kind == "subscription":
        return None if plan.rollover else add_months(paid_at, plan.interval_months)
    if plan.expires_after_months:
        return add_months(paid_at, plan.expires_after_months)
    return None
