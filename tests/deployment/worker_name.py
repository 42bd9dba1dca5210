"""``[core] hostname_callable`` for the deployment test: each worker reports the name in
``DATASHARE_WORKER_NAME`` as its hostname, so two workers on one machine tell apart."""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """The worker's name, else the machine's."""
    return os.environ.get("DATASHARE_WORKER_NAME") or socket.getfqdn()
