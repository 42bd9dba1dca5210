"""Fault switches of the Ed-Fi contract server, and the ASGI middleware that applies them
to data requests before the app sees them (429/5xx bursts with ``Retry-After``, held
requests that are never processed once their client gives up, dropped connections before or
after processing, token expiry). Also the problem-details body every refusal uses.

Nothing here waits a fixed time: a held request waits for its client to disconnect (or for
the test to :meth:`Faults.release` it), and a test waits for what happened with
:meth:`Faults.wait_for`, woken by each counted event."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def problem(status: int, type_: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """A problem-details body shaped like the Ed-Fi API 8 end-to-end cases."""
    return {
        "detail": detail,
        "type": type_,
        "title": title,
        "status": status,
        "correlationId": uuid.uuid4().hex,
        "validationErrors": extra.get("validationErrors", {}),
        "errors": extra.get("errors", []),
    }


@dataclass
class Faults:
    """Switches a test flips. Each fault hits data requests in arrival order: ``after=n``
    lets ``n`` requests through first; the lists hold one entry per coming request (``None``:
    no fault for that one)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: list[tuple[int, float | None] | None] = field(default_factory=list)
    holds: list[bool | None] = field(default_factory=list)
    drops: list[bool | None] = field(default_factory=list)
    expire_after: int | None = None
    changed: threading.Condition = field(default_factory=threading.Condition)
    _released: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def burst(
        self, status: int, count: int, *, retry_after: float | None = None, after: int = 0
    ) -> None:
        """``count`` data requests get ``status`` (with ``Retry-After`` if given)."""
        with self.lock:
            _schedule(self.statuses, after, [(status, retry_after)] * count)

    def hold(self, count: int, *, after: int = 0) -> None:
        """``count`` data requests get no answer until their client gives up (then they are
        never processed: counted ``abandoned``) or the test calls :meth:`release`."""
        with self.lock:
            _schedule(self.holds, after, [True] * count)

    def release(self) -> None:
        """Let every held request go on to be processed."""
        with self.lock:
            loop, released = self._loop, self._released
        if loop is not None and released is not None:
            loop.call_soon_threadsafe(released.set)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """Block until ``condition()`` holds (checked at each counted event), or fail."""
        with self.changed:
            if not self.changed.wait_for(condition, timeout):
                raise AssertionError(f"the server did not reach that state in {timeout} s")

    def notify(self) -> None:
        """Wake whoever waits in :meth:`wait_for` (the server counted something)."""
        with self.changed:
            self.changed.notify_all()

    def drop(self, count: int, *, after_processing: bool = False, after: int = 0) -> None:
        """``count`` data requests lose their connection mid-response; with
        ``after_processing`` the server has stored the write first."""
        with self.lock:
            _schedule(self.drops, after, [after_processing] * count)

    def expire_tokens_after(self, requests: int) -> None:
        """After ``requests`` more data requests, every token issued so far expires."""
        with self.lock:
            self.expire_after = requests

    def clear(self) -> None:
        """No more faults."""
        with self.lock:
            self.statuses.clear()
            self.holds.clear()
            self.drops.clear()
            self.expire_after = None
        self.release()

    def take(self) -> tuple[tuple[int, float | None] | None, bool, bool | None, bool]:
        """The faults for the next data request: status, hold, drop, token expiry."""
        with self.lock:
            status = self.statuses.pop(0) if self.statuses else None
            hold = bool(self.holds.pop(0) if self.holds else None)
            drop = self.drops.pop(0) if self.drops else None
            expire = False
            if self.expire_after is not None:
                self.expire_after -= 1
                if self.expire_after < 0:
                    expire, self.expire_after = True, None
            return status, hold, drop, expire

    async def held(self, receive: Any) -> bool:
        """Wait, in the server's loop, until the client disconnects (True) or the test
        releases held requests (False)."""
        with self.lock:
            if self._released is None or self._released.is_set():
                self._loop, self._released = asyncio.get_running_loop(), asyncio.Event()
            released = self._released
        waiting = asyncio.ensure_future(receive())
        freed = asyncio.ensure_future(released.wait())
        done, _ = await asyncio.wait({waiting, freed}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiting, freed):
            task.cancel()
        return waiting in done and waiting.result().get("type") == "http.disconnect"


def _schedule(queue: list[Any], after: int, entries: list[Any]) -> None:
    """Put ``entries`` into ``queue`` starting ``after`` requests from now."""
    queue.extend([None] * max(0, after - len(queue)))
    queue[after : after + len(entries)] = entries


class FaultMiddleware:
    """Pure ASGI: applies :class:`Faults` to data requests before the app sees them."""

    def __init__(self, app: Any, server: Any) -> None:
        self.app, self.server = app, server

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.server.prefix + "/"):
            await self.app(scope, receive, send)
            return
        self.server.requests[f"{scope['method']} data"] += 1
        status, hold, drop, expire = self.server.faults.take()
        if expire:
            self.server.tokens.clear()
        if status is not None:
            code, retry_after = status
            headers = [(b"content-type", b"application/json")]
            if retry_after is not None:
                headers.append((b"retry-after", str(retry_after).encode()))
            body = json.dumps(
                problem(
                    code, "urn:ed-fi:api:server-busy", "Service Unavailable", "Try again later."
                )
            ).encode()
            self.server.requests[f"fault {code}"] += 1
            self.server.faults.notify()
            await _respond(send, code, headers, body)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        if hold:
            self.server.requests["held"] += 1
            self.server.faults.notify()
        if hold and await self.server.faults.held(receive):
            self.server.requests["abandoned"] += 1
            self.server.faults.notify()
            return
        replay = _replay(b"".join(chunks), receive)
        if drop is None:
            if scope["method"] == "POST" and not self.server.window:
                self.server.window.append(time.perf_counter())
            await self.app(scope, replay, send)
            if scope["method"] == "POST":
                self.server.window[1:] = [time.perf_counter()]
            self.server.faults.notify()
            return
        if drop:  # after processing: run the app, throw its answer away
            await self.app(scope, replay, _swallow)
        self.server.requests["dropped"] += 1
        self.server.faults.notify()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"1000")],
            }
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": False})


async def _swallow(_message: dict[str, Any]) -> None:
    return None


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _respond(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
