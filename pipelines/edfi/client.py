"""An Ed-Fi API client that behaves: discovery, one shared OAuth2 token, retries with backoff.

- The token and data URLs come from the discovery document at ``GET {base_url}``.
- One :class:`~pipelines.edfi.auth.TokenAuth` token for every worker thread, renewed on
  expiry or on a 401.
- Every call retries (tenacity) on 429 (waiting what ``Retry-After`` says), 5xx, timeouts and
  dropped connections, with exponential backoff and jitter; never on other 4xx, which come
  back as :class:`Outcome` with the server's problem details made safe to log
  (:func:`problem_message`: quoted values and ``= value`` fragments removed).
- Writes (``POST``, nearly all the traffic) go straight to an ``httpcore`` connection pool —
  the engine under httpx — with the token from the same ``TokenAuth``: no request/response
  models, cookie jar or redirect handling per record, which halves the client's CPU per
  record. Reads and deletes use an ``httpx.Client`` with ``TokenAuth`` as its auth flow.

Errors (``pipelines.destinations.base``): :class:`TransientDeliveryError` when retries ran out
or the API cannot be reached; :class:`TerminalDeliveryError` for refused credentials or a
broken discovery document. Messages carry URL paths and statuses, never record values or
secrets.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

import httpcore
import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from pipelines.destinations.base import TerminalDeliveryError, TransientDeliveryError
from pipelines.edfi.auth import (
    RETRY_STATUSES,
    ClientCredentials,
    RetryableStatus,
    TokenAuth,
    load_credentials,
    retry_after,
)
from pipelines.edfi.settings import EdfiSettings

__all__ = [
    "ClientCredentials",
    "EdfiClient",
    "Outcome",
    "RetryableStatus",
    "TokenAuth",
    "load_credentials",
    "problem_message",
]

MAX_RETRY_AFTER_SECONDS = 300.0
"""The longest ``Retry-After`` honoured as given (longer ones are cut to this)."""
_TRANSIENT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.RemoteProtocolError,
)
_OTHER_ERRORS = (httpx.HTTPError, httpcore.ProtocolError, httpcore.UnsupportedProtocol)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_ASSIGNED = re.compile(r"=\s*[^,;)\s]+")
T = TypeVar("T")


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


def problem_message(status: int, content: bytes) -> str:
    """The problem details of a refusal without record values: status, title, type, detail and
    each validation message by JSON path, quoted values and ``= value`` fragments removed."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    phrase = _phrase(status)
    if not isinstance(body, Mapping):
        return f"{status} {phrase}"
    parts = [f"{status} {_scrub(body.get('title')) or phrase}"]
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


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "HTTP error"


class _CoalescingStream(httpcore.NetworkStream):
    """Holds writes until the next read, then sends them in one go: a request's headers and
    body leave in one segment instead of two (fewer system calls on both ends)."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream, self._pending = stream, bytearray()

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._pending += buffer

    def _flush(self, timeout: float | None) -> None:
        if self._pending:
            data, self._pending = bytes(self._pending), bytearray()
            self._stream.write(data, timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._flush(timeout)
        return self._stream.read(max_bytes, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        self._flush(timeout)
        return _CoalescingStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _CoalescingBackend(httpcore.NetworkBackend):
    """httpcore's synchronous socket backend with :class:`_CoalescingStream` streams."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        return _CoalescingStream(
            self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return _CoalescingStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class EdfiClient:
    """Talks to one Ed-Fi API from any number of threads (one token, bounded connections)."""

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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.school_year = school_year
        self.max_attempts, self.max_backoff = max_attempts, max_backoff_seconds
        self._discovery: dict[str, str] | None = None
        self._discovery_lock = threading.Lock()
        self._urls: dict[str, str] = {}
        self._pool_urls: dict[str, httpcore.URL] = {}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.http = httpx.Client(
            timeout=timeout_seconds, limits=limits, headers={"Accept": "application/json"}
        )
        self.pool = httpcore.ConnectionPool(
            max_connections=concurrency,
            max_keepalive_connections=concurrency,
            network_backend=_CoalescingBackend(),
        )
        self._timeouts = {"timeout": httpx.Timeout(timeout_seconds).as_dict()}
        self.auth = TokenAuth(lambda: self.urls["oauth"], credentials, http=self.http)
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
        """Close the connection pools."""
        self.pool.close()
        self.http.close()

    @property
    def urls(self) -> dict[str, str]:
        """``oauth`` and ``data`` URLs from the discovery document (fetched once)."""
        with self._discovery_lock:
            if self._discovery is None:
                self._discovery = self._discover()
            return self._discovery

    def _discover(self) -> dict[str, str]:
        response = self._retrying(
            "GET", self.base_url, lambda: self._checked(self.http.get(self.base_url))
        )
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
        url = self._urls.get(resource)
        if url is None:
            url = self._urls[resource] = f"{self.urls['data']}/ed-fi/{resource}"
        return url

    def post(
        self, resource: str, body: Mapping[str, Any] | None = None, *, content: bytes | None = None
    ) -> Outcome:
        """Upsert one resource (matched on its natural key by the server): ``body``, or its
        JSON already encoded as ``content``."""
        if content is None:
            content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        url = self._pool_urls.get(resource)
        if url is None:
            url = self._pool_urls[resource] = httpcore.URL(self.resource_url(resource))
        return self._retrying("POST", url, lambda: self._post_once(url, content))

    def delete(self, resource: str, resource_id: str) -> Outcome:
        """Delete one resource by id; a 404 (already gone) is reported, not raised."""
        url = f"{self.resource_url(resource)}/{resource_id}"
        response = self._retrying(
            "DELETE", url, lambda: self._checked(self.http.delete(url, auth=self.auth))
        )
        return self._outcome(
            response.status_code, response.headers.get("Location"), response.content
        )

    def find(self, resource: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The resources matching query ``params`` (a natural key finds at most one)."""
        url = self.resource_url(resource)
        response = self._retrying(
            "GET",
            url,
            lambda: self._checked(
                self.http.get(url, params={k: str(v) for k, v in params.items()}, auth=self.auth)
            ),
        )
        if response.status_code == 401:
            raise TerminalDeliveryError("the API refused a renewed token (401)")
        if response.status_code != 200:
            return []
        body = response.json()
        return body if isinstance(body, list) else []

    def _post_once(self, url: httpcore.URL, content: bytes) -> Outcome:
        """One POST on the pool; a 401 renews the shared token and resends once."""
        token = self.auth.bearer()
        response = self._pool_post(url, content, token)
        if response.status == 401:
            response = self._pool_post(url, content, self.auth.renew(token))
        headers = {name.lower(): value for name, value in response.headers}
        if response.status in RETRY_STATUSES:
            raise RetryableStatus(response.status, retry_after(headers.get(b"retry-after")))
        location = headers.get(b"location")
        return self._outcome(
            response.status, location.decode() if location else None, response.content
        )

    def _pool_post(self, url: httpcore.URL, content: bytes, token: str) -> httpcore.Response:
        headers = [
            (b"Authorization", b"Bearer " + token.encode("ascii")),
            (b"Content-Type", b"application/json"),
            (b"Accept", b"application/json"),
        ]
        return self.pool.request(
            "POST", url, headers=headers, content=content, extensions=self._timeouts
        )

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if response.status_code in RETRY_STATUSES:
            raise RetryableStatus(
                response.status_code, retry_after(response.headers.get("Retry-After"))
            )
        return response

    @staticmethod
    def _outcome(status: int, location: str | None, content: bytes) -> Outcome:
        resource_id = location.rstrip("/").rsplit("/", 1)[-1] if location else None
        if 200 <= status < 300:
            return Outcome(status, resource_id)
        if status == 401:
            raise TerminalDeliveryError("the API refused a renewed token (401)")
        return Outcome(status, resource_id, problem_message(status, content))

    def _retrying(self, method: str, url: str | httpcore.URL, attempt: Callable[[], T]) -> T:
        """``attempt()``, again on retryable failures; errors translated (no values)."""
        try:
            try:
                return attempt()
            except (RetryableStatus, *_TRANSIENT_ERRORS) as first:
                if self.max_attempts <= 1:
                    raise
                self._sleep(self._wait_for(first, 1))
            return self._retry(attempt)
        except RetryableStatus as error:
            raise TransientDeliveryError(
                f"{method} {_path(url)}: HTTP {error.status} after {self.max_attempts} attempts"
            ) from error
        except _TRANSIENT_ERRORS as error:
            raise TransientDeliveryError(
                f"{method} {_path(url)}: {type(error).__name__} after {self.max_attempts} attempts"
            ) from error
        except _OTHER_ERRORS as error:
            raise TerminalDeliveryError(f"{method} {_path(url)}: {type(error).__name__}") from error

    def _wait_for(self, error: BaseException | None, attempt: int) -> float:
        """What to wait after failed attempt ``attempt``: the server's ``Retry-After`` when it
        gave one, else exponential backoff (0.1 s doubling, capped) with jitter."""
        if isinstance(error, RetryableStatus) and error.retry_after is not None:
            return min(error.retry_after, MAX_RETRY_AFTER_SECONDS)
        return min(self.max_backoff, 0.1 * 2 ** (attempt - 1) + random.uniform(0, 0.1))


def _path(url: str | httpcore.URL) -> str:
    """The path of ``url`` without the query (a query may carry key values)."""
    if isinstance(url, httpcore.URL):
        return url.target.decode("ascii", "replace").split("?", 1)[0]
    return httpx.URL(url).path
