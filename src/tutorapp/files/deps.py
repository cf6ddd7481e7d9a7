"""Who calls the files routes: the one module of this domain that imports the
principal dependencies (`tutorapp.auth`)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from tutorapp.auth.deps import (
    PUBLIC,
    Access,
    AdminPrincipal,
    BearerCredentials,
    CurrentPrincipal,
    OptionalPrincipal,
    Principal,
    SessionCookieValue,
)
from tutorapp.auth.roles import Role
from tutorapp.core.db import SessionDep
from tutorapp.files.service import ANONYMOUS, Caller

__all__ = ["PUBLIC", "AdminPrincipal", "CurrentPrincipal", "OptionalPrincipal", "Principal",
           "StorageAdmin", "StorageCaller", "StorageUser", "caller_of"]


def _service_key(request: Request, bearer: HTTPAuthorizationCredentials | None) -> bool:
    """Supabase's secret key as the bearer: acts on every object (as `service_role`)."""
    key = request.app.state.settings.supabase_service_key
    return bool(key and bearer and hmac.compare_digest(bearer.credentials.strip(), key))


def caller_of(principal: Principal | None) -> Caller:
    if principal is None:
        return ANONYMOUS
    admin = principal.role == Role.admin and principal.aal == "aal2"
    return Caller(user_id=principal.id, admin=admin)


@dataclass(frozen=True)
class StorageAccess(Access):
    """An access rule that also lets the service key through (as an admin)."""

    async def __call__(self, request: Request, db: SessionDep, bearer: BearerCredentials,
                       cookie: SessionCookieValue) -> Principal | None:
        if _service_key(request, bearer):
            request.state.storage_caller = Caller(user_id=None, admin=True)
            return None
        principal = await super().__call__(request, db, bearer, cookie)
        request.state.storage_caller = caller_of(principal)
        return principal


_signed_in = StorageAccess()
_anyone = StorageAccess(authenticated=False)
_admin = StorageAccess(roles=frozenset({Role.admin}), require_aal2=True)


async def _user(request: Request, _: Annotated[Principal | None, Depends(_signed_in)]) -> Caller:
    return request.state.storage_caller


async def _any(request: Request, _: Annotated[Principal | None, Depends(_anyone)]) -> Caller:
    return request.state.storage_caller


async def _admin_caller(request: Request,
                        _: Annotated[Principal | None, Depends(_admin)]) -> Caller:
    return request.state.storage_caller


StorageUser = Annotated[Caller, Depends(_user)]  # signed in, or the service key
StorageCaller = Annotated[Caller, Depends(_any)]  # anyone
StorageAdmin = Annotated[Caller, Depends(_admin_caller)]  # an admin, or the service key
