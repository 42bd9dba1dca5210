"""Who is asking: the api-server's own login token, checked through Airflow's auth manager on
every request, mapped to one of three console roles; and CSRF protection for every change.

Plugin apps are not behind Airflow's login by themselves, so every route takes one of
``Viewer``/``DataManager``/``Admin`` below. The token is read from ``Authorization: Bearer``
or from the ``_token`` cookie Airflow's login sets, and validated by the auth manager
(signature, expiry, revocation). Roles, from the auth manager's own roles:

=================================  ==============  =========================================
Airflow role (SimpleAuthManager)   console role    may
=================================  ==============  =========================================
``VIEWER``                         viewer          see counts: runs, reasons, programs,
                                                   agreements, ledger integrity
``USER``, ``OP``                   data manager    also child-level rows: the children
                                                   behind a reason (with names), a child's
                                                   disclosures
``ADMIN``                          admin           also change participation and opt-ins
=================================  ==============  =========================================

Other auth managers (FAB, Keycloak, ...) are asked the same questions through their
authorization methods: ``is_authorized_configuration(PUT)`` makes an admin,
``is_authorized_dag(PUT)`` a data manager, ``is_authorized_view`` a viewer.

CSRF: a signed double-submit token. The token is ``nonce.HMAC(key, nonce|user)``; it is set
as a ``SameSite=Strict`` cookie and embedded in each form; a POST must carry the same token in
the form (``csrf_token``) or the ``X-CSRF-Token`` header, signed for the logged-in user, and an
``Origin`` header, when sent, must be this host.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request
from starlette.datastructures import FormData

COOKIE_TOKEN = "_token"  # Airflow's login cookie (airflow.api_fastapi.auth.managers.base)
CSRF_COOKIE = "datashare_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class Role(IntEnum):
    """Console roles, each including the ones below it."""

    VIEWER = 1
    DATA_MANAGER = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The role's name as people say it."""
        return self.name.lower().replace("_", " ")


SIMPLE_ROLES = {
    "VIEWER": Role.VIEWER,
    "USER": Role.DATA_MANAGER,
    "OP": Role.DATA_MANAGER,
    "ADMIN": Role.ADMIN,
}


@dataclass(frozen=True)
class Person:
    """The logged-in user as the console knows them: the login name and console role."""

    name: str
    role: Role | None


class NotLoggedIn(Exception):
    """No valid Airflow token on the request."""


class Forbidden(Exception):
    """Logged in, but the role does not allow this."""

    def __init__(self, person: Person, needed: Role) -> None:
        super().__init__(f"needs the {needed.label} role")
        self.person = person
        self.needed = needed


class CsrfRefused(Exception):
    """A change without a valid CSRF token (or from another origin)."""


def _auth_manager() -> Any:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def role_of(user: Any, manager: Any) -> Role | None:
    """The console role of an Airflow user, or None when it has none."""
    if hasattr(user, "role"):  # SimpleAuthManager: one role name per user
        return SIMPLE_ROLES.get(str(user.role or "").upper())
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView

    if manager.is_authorized_configuration(method="PUT", user=user):
        return Role.ADMIN
    if manager.is_authorized_dag(method="PUT", user=user):
        return Role.DATA_MANAGER
    if manager.is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        return Role.VIEWER
    return None


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(COOKIE_TOKEN) or None


async def person(request: Request) -> Person:
    """The logged-in person, validated by Airflow's auth manager; ``NotLoggedIn`` otherwise."""
    cached = getattr(request.state, "datashare_person", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    token = _token(request)
    if not token:
        raise NotLoggedIn()
    from jwt import InvalidTokenError

    manager = _auth_manager()
    try:
        user = await manager.get_user_from_token(token)
    except InvalidTokenError as error:  # malformed, forged, expired or revoked
        raise NotLoggedIn() from error
    found = Person(name=str(user.get_name()), role=role_of(user, manager))
    request.state.datashare_person = found
    return found


def _needs(needed: Role):  # type: ignore[no-untyped-def]
    async def check(who: Annotated[Person, Depends(person)]) -> Person:
        if who.role is None or who.role < needed:
            raise Forbidden(who, needed)
        return who

    return check


Viewer = Annotated[Person, Depends(_needs(Role.VIEWER))]
DataManager = Annotated[Person, Depends(_needs(Role.DATA_MANAGER))]
Admin = Annotated[Person, Depends(_needs(Role.ADMIN))]


# -- CSRF ----------------------------------------------------------------------------------


def _csrf_key() -> bytes:
    secret = os.environ.get("AIRFLOW__API_AUTH__JWT_SECRET")
    if not secret:
        from airflow.configuration import conf

        secret = conf.get("api_auth", "jwt_secret", fallback="")
    if not secret:
        secret = _PROCESS_SECRET
    return hashlib.sha256(b"datashare-console-csrf\x00" + secret.encode()).digest()


_PROCESS_SECRET = secrets.token_hex(32)


def _signature(nonce: str, user: str) -> str:
    return hmac.new(_csrf_key(), f"{nonce}|{user}".encode(), hashlib.sha256).hexdigest()


def new_csrf_token(user: str) -> str:
    """A fresh token for ``user``: a nonce and its signature."""
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_signature(nonce, user)}"


def csrf_token_for(request: Request, user: str) -> str:
    """The request's cookie token when it is valid for ``user``, else a new one."""
    current = request.cookies.get(CSRF_COOKIE, "")
    return current if _valid(current, user) else new_csrf_token(user)


def _valid(token: str, user: str) -> bool:
    nonce, _, signature = token.partition(".")
    return bool(nonce and signature) and hmac.compare_digest(signature, _signature(nonce, user))


async def checked_form(request: Request, who: Person) -> FormData:
    """The POSTed form after checking its CSRF token and origin; ``CsrfRefused`` otherwise."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise CsrfRefused("the request came from another site")
    form = await request.form()
    sent = str(form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not (sent and cookie and hmac.compare_digest(sent, cookie) and _valid(sent, who.name)):
        raise CsrfRefused("the form's security token is missing or does not match")
    return form
