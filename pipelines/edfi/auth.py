"""Ed-Fi credentials and the one OAuth2 token every worker of a client shares.

:class:`TokenAuth` holds a client-credentials token: fetched on first use, renewed shortly
before ``expires_in`` runs out, and on a 401 — by the first worker that sees it (the token it
used is still the current one); the others reuse the new token. It is an ``httpx.Auth`` flow
for any httpx client, and offers the same two steps (:meth:`TokenAuth.bearer`,
:meth:`TokenAuth.renew`) to the client's fast write path. Credentials come from an Airflow
connection or the environment, never from files (:func:`load_credentials`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import httpx

from pipelines.destinations.base import TerminalDeliveryError
from pipelines.edfi.settings import Credentials

log = logging.getLogger(__name__)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class ClientCredentials:
    """An OAuth client key and secret; the secret never shows in a repr."""

    client_id: str
    client_secret: str = field(repr=False)


def load_credentials(spec: Credentials) -> ClientCredentials:
    """The credentials ``spec`` names: an Airflow connection, else environment variables."""
    if spec.airflow_conn_id:
        try:
            from airflow.sdk import Connection  # Airflow only when a connection is named
        except ImportError as error:
            raise TerminalDeliveryError("credentials: Airflow is not installed") from error
        try:
            connection = Connection.get(spec.airflow_conn_id)
        except Exception as error:  # Airflow's not-found and backend errors
            raise TerminalDeliveryError(
                f"credentials: Airflow connection {spec.airflow_conn_id} is not defined"
            ) from error
        if not connection.login or not connection.password:
            raise TerminalDeliveryError(
                f"credentials: Airflow connection {spec.airflow_conn_id} lacks login or password"
            )
        return ClientCredentials(connection.login, connection.password)
    missing = [n for n in (spec.client_id_env, spec.client_secret_env) if not os.environ.get(n)]
    if missing:
        raise TerminalDeliveryError(f"credentials: environment variable(s) {missing} not set")
    return ClientCredentials(os.environ[spec.client_id_env], os.environ[spec.client_secret_env])


class RetryableStatus(Exception):
    """A 429 or 5xx answer; ``retry_after`` is the server's ``Retry-After`` in seconds."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.retry_after = status, retry_after


def retry_after(value: str | bytes | None) -> float | None:
    """Seconds from a ``Retry-After`` header value (decimals accepted), else ``None``."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class TokenAuth(httpx.Auth):
    """One client-credentials token shared by every thread of a client (see module doc).

    Token requests go through ``http`` (its own small client unless given)."""

    def __init__(
        self,
        token_url: Callable[[], str],
        credentials: ClientCredentials,
        *,
        leeway_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        http: httpx.Client | None = None,
    ) -> None:
        self._token_url, self._credentials = token_url, credentials
        self._leeway, self._clock = leeway_seconds, clock
        self._http = http or httpx.Client(timeout=30.0)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.tokens_fetched = 0

    def bearer(self) -> str:
        """The current token, fetched first when there is none or it is about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - self._leeway:
                self._fetch()
            assert self._token is not None
            return self._token

    def renew(self, stale: str) -> str:
        """A token other than ``stale`` (refused with a 401): fetched by the first caller,
        reused by those who come after."""
        with self._lock:
            if self._token is None or self._token == stale:
                self._fetch()
            assert self._token is not None
            return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """Authorize ``request``; on a 401 renew the token (once for all threads), resend."""
        token = self.bearer()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self.renew(token)}"
            yield request

    def close(self) -> None:
        """Close the token client."""
        self._http.close()

    def _fetch(self) -> None:
        credentials = self._credentials
        response = self._http.post(
            self._token_url(),
            data={"grant_type": "client_credentials"},
            auth=(credentials.client_id, credentials.client_secret),
        )
        if response.status_code in RETRY_STATUSES:
            raise RetryableStatus(
                response.status_code, retry_after(response.headers.get("Retry-After"))
            )
        if response.status_code != 200:
            raise TerminalDeliveryError(
                f"token request refused ({response.status_code}): check the client credentials"
            )
        try:
            body = response.json()
            token, expires_in = str(body["access_token"]), float(body.get("expires_in", 1800))
        except (ValueError, KeyError, TypeError) as error:
            raise TerminalDeliveryError("token response without access_token") from error
        self._token, self._expires_at = token, self._clock() + expires_in
        self.tokens_fetched += 1
        log.info("Ed-Fi token obtained (valid %.0f s)", expires_in)
