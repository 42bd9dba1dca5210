"""Ed-Fi sending throughput: this project's destination against lightbeam, in one run.

Both send the same payloads (this destination's dry-run JSONL files, which lightbeam reads as
they are) to the same local contract server (one uvicorn process, DS 5 / ODS/API 7 URLs), at
the same concurrency, each starting from an empty server. Throughput is measured twice:
on the server (first data POST arriving to last answer: the sending alone) and end to end
(ours: ``deliver()`` with mapping, local validation and the ledger; lightbeam: its whole
process). Lightbeam lives in its own virtualenv (``pip install lightbeam`` into e.g.
/tmp/lbvenv), never in the project's.

    .venv/bin/python benchmarks/edfi_benchmark.py --children 10000 --concurrency 8 \\
        --lightbeam /tmp/lbvenv/bin/lightbeam
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.db import make_engine  # noqa: E402
from pipelines.edfi.client import ClientCredentials  # noqa: E402
from pipelines.edfi.destination import EdfiDestination  # noqa: E402
from pipelines.edfi.settings import EdfiSettings  # noqa: E402
from schemas import Base  # noqa: E402
from tests.edfi.frames import records_batch, synthetic_frame  # noqa: E402

CLIENT, SECRET = "datashare", "datashare-secret"
LIGHTBEAM_CONFIG = """\
data_dir: {data}/
namespace: ed-fi
edfi_api:
  base_url: {base}
  version: 3
  mode: sandbox
  client_id: {client}
  client_secret: {secret}
connection:
  pool_size: {concurrency}
  timeout: 60
  num_retries: 10
  backoff_factor: 1.5
  retry_statuses: [429, 500, 502, 503, 504]
  verify_ssl: false
log_level: WARNING
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(port: int) -> subprocess.Popen[bytes]:
    env = {"EDFI_CLIENT_ID": CLIENT, "EDFI_CLIENT_SECRET": SECRET, "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.edfi.contract_server", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.05)
    process.terminate()
    raise RuntimeError("the contract server did not start")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stats(base: str) -> dict:
    return httpx.get(f"{base}_admin/stats", timeout=30).json()


def _reset(base: str) -> None:
    httpx.post(f"{base}_admin/reset", timeout=30).raise_for_status()


class Run(NamedTuple):
    """One sender's run: wall seconds (whole), server window seconds, records written, the
    sender's CPU seconds, the server's CPU seconds."""

    wall: float
    window: float
    written: int
    sender_cpu: float
    server_cpu: float


def _lightbeam(console: Console, lightbeam: str, config: Path, records: int) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [lightbeam, "send", "-c", str(config)], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        console.print(f"[red]lightbeam: exit {done.returncode}[/red]\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu


def _ours(
    console: Console,
    settings: EdfiSettings,
    engine: object,
    credentials: ClientCredentials,
    batch: object,
    records: int,
) -> tuple[float, float]:
    destination = EdfiDestination(settings, engine, credentials=credentials)  # type: ignore[arg-type]
    cpu, start = time.process_time(), time.perf_counter()
    result = destination.deliver(batch)  # type: ignore[arg-type]
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    destination.close()
    sent = sum(1 for r in result.resources if r.status == "sent")
    if sent != records:
        console.print(f"[red]this project: {sent} of {records} sent[/red]")
    return wall, cpu


def run(children: int, concurrency: int, lightbeam: str, rounds: int) -> None:
    console = Console(width=130)
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    server = _start_server(port)
    work = Path(tempfile.mkdtemp(prefix="edfi-bench-"))
    try:
        frame, keys = synthetic_frame(children)
        batch = records_batch(frame, keys)
        settings = EdfiSettings(
            name="bench",
            base_url=base,
            concurrency=concurrency,
            education_organizations={
                "default": {"school_id": 255901001, "education_organization_id": 255901}
            },
        )
        credentials = ClientCredentials(CLIENT, SECRET)
        files = EdfiDestination(settings, make_engine("sqlite://"), credentials=credentials)
        dry = files.write_dry_run(batch, work / "data")
        records = sum(sum(1 for _ in path.open()) for path in dry.files.values())
        config = work / "lightbeam.yaml"
        config.write_text(
            LIGHTBEAM_CONFIG.format(
                data=work / "data",
                base=base.rstrip("/"),
                client=CLIENT,
                secret=SECRET,
                concurrency=concurrency,
            )
        )
        results: dict[str, list[Run]] = {"this project": [], "lightbeam": []}
        for round_ in range(rounds):
            senders = ["lightbeam", "this project"]
            for sender in senders if round_ % 2 == 0 else reversed(senders):
                _reset(base)
                server_cpu = _cpu_seconds(server.pid)
                if sender == "lightbeam":
                    run = _lightbeam(console, lightbeam, config, records)
                else:
                    engine = make_engine(f"sqlite:///{work / f'ledger-{round_}.db'}")
                    Base.metadata.create_all(engine)
                    run = _ours(console, settings, engine, credentials, batch, records)
                stats = _stats(base)
                if stats["writes"] != records:
                    console.print(f"[red]{sender}: {stats['writes']} of {records} written[/red]")
                results[sender].append(
                    Run(
                        run[0],
                        stats["seconds"],
                        stats["writes"],
                        run[1],
                        _cpu_seconds(server.pid) - server_cpu,
                    )
                )
        _report(console, children, records, concurrency, results)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _report(
    console: Console,
    children: int,
    records: int,
    concurrency: int,
    results: dict[str, list[Run]],
) -> None:
    rounds = len(results["lightbeam"])
    table = Table(
        title=f"Ed-Fi send: {children:,} children, {records:,} records, "
        f"concurrency {concurrency}, best of {rounds} (order alternates)"
    )
    for name in (
        "sender",
        "records/s sending",
        "records/s end to end",
        "server window s",
        "end-to-end s",
        "sender CPU ms/record",
        "server CPU ms/record",
    ):
        table.add_column(name, justify="left" if name == "sender" else "right")
    for sender, runs in results.items():
        best = min(runs, key=lambda r: r.window)
        table.add_row(
            sender,
            f"{best.written / best.window:,.0f}",
            f"{best.written / best.wall:,.0f}",
            f"{best.window:.2f}",
            f"{best.wall:.2f}",
            f"{best.sender_cpu / records * 1e3:.3f}",
            f"{best.server_cpu / records * 1e3:.3f}",
        )
    console.print(table)
    console.print(
        "sending = first POST reaching the server to its last answer; end to end = ours: "
        "deliver() with mapping, strict validation and the ledger; lightbeam: its process. "
        "Sender CPU includes that extra work."
    )
    ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    theirs = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    console.print(
        f"peak RSS: this process {ours:,.0f} MiB; largest child process "
        f"(lightbeam or server) {theirs:,.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--lightbeam", default="/tmp/lbvenv/bin/lightbeam")
    args = parser.parse_args()
    run(args.children, args.concurrency, args.lightbeam, args.rounds)


if __name__ == "__main__":
    main()
