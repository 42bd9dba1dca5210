"""An Ed-Fi API client that behaves: discovery, one shared OAuth2 token, retries with backoff.

- The token and data URLs come from the discovery document at ``GET {base_url}``.
- :class:`TokenAuth` is an ``httpx.Auth`` flow holding ONE client-credentials token for every
  worker thread: fetched on first use, renewed shortly before ``expires_in`` runs out, and on a
  401 — by the first worker that sees it; the others reuse the new token.
- :meth:`EdfiClient.send` retries (tenacity) on 429 (waiting what ``Retry-After`` says), 5xx,
  timeouts and dropped connections, with exponential backoff and jitter; never on other 4xx,
  which come back as :class:`Outcome` with the server's problem details made safe to log
  (:func:`problem_message`: quoted values and ``= value`` fragments removed).
- Credentials come from an Airflow connection (login = key, password = secret) or the
  environment, never from files (:func:`load_credentials`).

Errors (``pipelines.destinations.base``): :class:`TransientDeliveryError` when retries ran out
or the API cannot be reached; :class:`TerminalDeliveryError` for refused credentials or a
broken discovery document. Messages carry URLs and statuses, never record values or secrets.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from pipelines.destinations.base import TerminalDeliveryError, TransientDeliveryError
from pipelines.edfi.settings import Credentials, EdfiSettings

log = logging.getLogger(__name__)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 300.0
"""The longest ``Retry-After`` honoured as given (longer ones are cut to this)."""
_TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_JSON = {"Content-Type": "application/json", "Accept": "application/json"}
_ACCEPT = {"Accept": "application/json"}
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_ASSIGNED = re.compile(r"=\s*[^,;)\s]+")


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


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class TokenAuth(httpx.Auth):
    """One client-credentials token shared by every thread of a client (see module doc)."""

    requires_response_body = True

    def __init__(
        self,
        token_url: Callable[[], str],
        credentials: ClientCredentials,
        *,
        leeway_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token_url, self._credentials = token_url, credentials
        self._leeway, self._clock = leeway_seconds, clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.tokens_fetched = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """Authorize ``request``; on a 401 renew the token (once for all threads), resend.
        (httpx's ``sync_auth_flow`` wraps this and reads each response body first.)"""
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - self._leeway:
                self._store((yield self._token_request()))
            token = self._token
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        with self._lock:
            if self._token == token:
                self._store((yield self._token_request()))
            token = self._token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    async def async_auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        """Not supported: the client is synchronous (threads share one token)."""
        raise NotImplementedError("TokenAuth is for the synchronous client")
        yield request  # pragma: no cover

    def _token_request(self) -> httpx.Request:
        pair = f"{self._credentials.client_id}:{self._credentials.client_secret}"
        basic = base64.b64encode(pair.encode("utf-8")).decode("ascii")
        return httpx.Request(
            "POST",
            self._token_url(),
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )

    def _store(self, response: httpx.Response) -> None:
        if response.status_code in RETRY_STATUSES:
            raise RetryableStatus(response.status_code, _retry_after(response))
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


@dataclass(frozen=True)
class Outcome:
    """What the API answered to one write or delete: the status, the resource id (from the
    ``Location`` header) and, for a refusal, a problem message safe to log."""

    status: int
    resource_id: str | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300


def problem_message(response: httpx.Response) -> str:
    """The problem details of a refusal without record values: status, title, type, detail and
    each validation message by JSON path, quoted values and ``= value`` fragments removed."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        return f"{response.status_code} {response.reason_phrase}"
    parts = [f"{response.status_code} {_scrub(body.get('title')) or response.reason_phrase}"]
    if body.get("type"):
        parts.append(f"[{_scrub(body['type'])}]")
    if body.get("detail"):
        parts.append(_scrub(body["detail"]))
    errors = body.get("validationErrors") or {}
    if isinstance(errors, Mapping):
        for path, messages in errors.items():
            for message in messages if isinstance(messages, list) else [messages]:
                parts.append(f"{_scrub(path)}: {_scrub(message)}")
    for message in body.get("errors") or []:
        parts.append(_scrub(message))
    return " ".join(p for p in parts if p)[:800]


def _scrub(text: Any) -> str:
    if text is None:
        return ""
    return _ASSIGNED.sub("= <value>", _QUOTED.sub("<value>", str(text))).strip()


class EdfiClient:
    """Talks to one Ed-Fi API from any number of threads (one connection pool, one token).

    Requests go straight to an httpx transport (``httpx.HTTPTransport``'s connection pool,
    or the one given) through the :class:`TokenAuth` flow: no cookie jar, redirects or URL
    merging per request, which halves the client's CPU per record. The first attempt runs
    without tenacity's bookkeeping; a retryable failure continues in a tenacity loop.
    """

    def __init__(
        self,
        base_url: str,
        credentials: ClientCredentials,
        *,
        concurrency: int = 8,
        timeout_seconds: float = 30.0,
        max_attempts: int = 6,
        max_backoff_seconds: float = 30.0,
        school_year: int | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.school_year = school_year
        self.max_attempts, self.max_backoff = max_attempts, max_backoff_seconds
        self._discovery: dict[str, str] | None = None
        self._discovery_lock = threading.Lock()
        self._urls: dict[str, httpx.URL] = {}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.transport = transport or httpx.HTTPTransport(limits=limits)
        self._timeout = {"timeout": httpx.Timeout(timeout_seconds).as_dict()}
        self.auth = TokenAuth(lambda: self.urls["oauth"], credentials)
        self._sleep = sleep
        self._retry = Retrying(
            stop=stop_after_attempt(max(1, max_attempts - 1)),
            wait=lambda state: self._wait_for(
                state.outcome.exception() if state.outcome else None, state.attempt_number + 1
            ),
            retry=retry_if_exception_type((RetryableStatus, *_TRANSIENT_ERRORS)),
            sleep=sleep,
            reraise=True,
        )

    @classmethod
    def from_settings(
        cls, settings: EdfiSettings, credentials: ClientCredentials | None = None, **kwargs: Any
    ) -> EdfiClient:
        """A client for ``settings``; credentials loaded as the settings say unless given."""
        return cls(
            settings.base_url,
            credentials or load_credentials(settings.credentials),
            concurrency=settings.concurrency,
            timeout_seconds=settings.timeout_seconds,
            max_attempts=settings.max_attempts,
            max_backoff_seconds=settings.max_backoff_seconds,
            school_year=settings.school_year,
            **kwargs,
        )

    def __enter__(self) -> EdfiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self.transport.close()

    @property
    def urls(self) -> dict[str, str]:
        """``oauth`` and ``data`` URLs from the discovery document (fetched once)."""
        with self._discovery_lock:
            if self._discovery is None:
                self._discovery = self._discover()
            return self._discovery

    def _discover(self) -> dict[str, str]:
        response = self._retrying("GET", httpx.URL(self.base_url), auth=False)
        try:
            urls = response.json()["urls"]
            oauth, data = str(urls["oauth"]), str(urls["dataManagementApi"]).rstrip("/")
        except (ValueError, KeyError, TypeError) as error:
            raise TerminalDeliveryError(
                f"{self.base_url}: no discovery document with urls.oauth and urls.dataManagementApi"
            ) from error
        if self.school_year is not None:
            data = f"{data}/{self.school_year}"
        return {"oauth": oauth, "data": data}

    def resource_url(self, resource: str) -> str:
        """Where ``resource`` (e.g. ``students``) lives."""
        return f"{self.urls['data']}/ed-fi/{resource}"

    def _url(self, resource: str) -> httpx.URL:
        url = self._urls.get(resource)
        if url is None:
            url = self._urls[resource] = httpx.URL(self.resource_url(resource))
        return url

    def post(
        self, resource: str, body: Mapping[str, Any] | None = None, *, content: bytes | None = None
    ) -> Outcome:
        """Upsert one resource (matched on its natural key by the server): ``body``, or its
        JSON already encoded as ``content``."""
        if content is None:
            content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return self._outcome(self._retrying("POST", self._url(resource), content=content))

    def delete(self, resource: str, resource_id: str) -> Outcome:
        """Delete one resource by id; a 404 (already gone) is reported, not raised."""
        url = self._url(resource).join(f"{self._url(resource).path}/{resource_id}")
        return self._outcome(self._retrying("DELETE", url))

    def find(self, resource: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The resources matching query ``params`` (a natural key finds at most one)."""
        url = self._url(resource).copy_merge_params({k: str(v) for k, v in params.items()})
        response = self._retrying("GET", url)
        if response.status_code != 200:
            return []
        body = response.json()
        return body if isinstance(body, list) else []

    def _outcome(self, response: httpx.Response) -> Outcome:
        location = response.headers.get("Location")
        resource_id = location.rstrip("/").rsplit("/", 1)[-1] if location else None
        if 200 <= response.status_code < 300:
            return Outcome(response.status_code, resource_id)
        if response.status_code == 401:
            raise TerminalDeliveryError("the API refused a renewed token (401)")
        return Outcome(response.status_code, resource_id, problem_message(response))

    def _once(
        self, method: str, url: httpx.URL, content: bytes | None = None, auth: bool = True
    ) -> httpx.Response:
        """One request through the auth flow (what ``httpx.Client`` does, minus cookies,
        redirects and URL merging); the body is read and the connection released."""
        headers = _JSON if content is not None else _ACCEPT
        request = httpx.Request(method, url, headers=headers, content=content,
                                extensions=self._timeout)  # fmt: skip
        flow = self.auth.sync_auth_flow(request) if auth else iter((request,))
        request = next(flow)
        while True:
            response = self.transport.handle_request(request)
            try:
                response.read()
                request = flow.send(response) if auth else None
            except StopIteration:
                request = None
            finally:
                response.close()
            if request is None:
                break
        if response.status_code in RETRY_STATUSES:
            raise RetryableStatus(response.status_code, _retry_after(response))
        return response

    def _retrying(self, method: str, url: httpx.URL, **kwargs: Any) -> httpx.Response:
        try:
            try:
                return self._once(method, url, **kwargs)
            except (RetryableStatus, *_TRANSIENT_ERRORS) as first:
                if self.max_attempts <= 1:
                    raise
                self._sleep(self._wait_for(first, 1))
            return self._retry(self._once, method, url, **kwargs)
        except RetryableStatus as error:
            raise TransientDeliveryError(
                f"{method} {url.path}: HTTP {error.status} after {self.max_attempts} attempts"
            ) from error
        except _TRANSIENT_ERRORS as error:
            raise TransientDeliveryError(
                f"{method} {url.path}: {type(error).__name__} after {self.max_attempts} attempts"
            ) from error
        except httpx.HTTPError as error:
            raise TerminalDeliveryError(f"{method} {url.path}: {type(error).__name__}") from error

    def _wait_for(self, error: BaseException | None, attempt: int) -> float:
        """What to wait after failed attempt ``attempt``: the server's ``Retry-After`` when it
        gave one, else exponential backoff (0.1 s doubling, capped) with jitter."""
        if isinstance(error, RetryableStatus) and error.retry_after is not None:
            return min(error.retry_after, MAX_RETRY_AFTER_SECONDS)
        return min(self.max_backoff, 0.1 * 2 ** (attempt - 1) + random.uniform(0, 0.1))
