"""A real SMTP server on loopback (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

import email
import socket
from email.message import Message
from types import TracebackType

from aiosmtpd.controller import Controller


class _Keep:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


class SmtpTestServer:
    """``with SmtpTestServer() as smtp:`` then ``smtp.uri`` is an Airflow connection URI."""

    def __init__(self) -> None:
        self._handler = _Keep()
        with socket.socket() as probe:  # a free port on loopback
            probe.bind(("127.0.0.1", 0))
            self._port = int(probe.getsockname()[1])
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self._port)

    def __enter__(self) -> SmtpTestServer:
        self._controller.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self._port

    @property
    def uri(self) -> str:
        """An Airflow connection URI for SmtpHook: plain SMTP on loopback, no login."""
        return (
            f"smtp://127.0.0.1:{self.port}?disable_tls=true&disable_ssl=true"
            "&from_email=datashare%40example.org&retry_limit=0&timeout=10"
        )

    @property
    def messages(self) -> list[Message]:
        """Every message received so far."""
        return list(self._handler.messages)


def text_of(message: Message) -> str:
    """The decoded text of every part of ``message``, with its subject."""
    parts = [str(message["Subject"])]
    for part in message.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            parts.append(payload.decode("utf-8", "replace"))
    return "\n".join(parts)
