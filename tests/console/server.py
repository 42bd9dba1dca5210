"""A real ``airflow api-server`` on a free loopback port, in its own AIRFLOW_HOME, with the
console plugin found through the installed package's entry point.

Users are SimpleAuthManager's (``name:role``); their generated passwords are read from the
file the auth manager writes. Output goes to ``log`` so a test can scan it afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROJECT = Path(__file__).resolve().parents[2]
AIRFLOW = Path(sys.executable).with_name("airflow")


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ApiServer:
    """One api-server process; ``start`` returns when it answers, ``stop`` ends it."""

    def __init__(self, home: Path, users: dict[str, str], environ: dict[str, str]) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "api-server.log"
        self.env = {
            **os.environ,
            **environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(PROJECT / "airflow.cfg"),
            "DATASHARE_HOME": str(PROJECT),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                f"{name}:{role}" for name, role in users.items()
            ),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "GX_ANALYTICS_ENABLED": "False",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180) -> ApiServer:
        """Migrate Airflow's metadata database, start the server and wait until it answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(AIRFLOW), "db", "migrate"], env=self.env, check=True, capture_output=True
        )
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"api-server exited: see {self.log}")
            try:
                if httpx.get(f"{self.url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)  # polling for readiness of another process; nothing else waits
        raise TimeoutError(f"api-server did not answer within {timeout}s: see {self.log}")

    def passwords(self) -> dict[str, str]:
        """The passwords SimpleAuthManager generated for the users."""
        path = self.home / "simple_auth_manager_passwords.json.generated"
        return json.loads(path.read_text())  # type: ignore[no-any-return]

    def stop(self) -> None:
        """End the server (its process group) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
