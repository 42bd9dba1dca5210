"""The demo DAG end to end through real Airflow (``datashare run`` -> ``airflow dags test``, in
the same process), and proof that no task log, XCom value, validation result or report names
a child."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select, update

from pipelines.db import make_engine
from pipelines.demo import DEMO_DATE
from schemas import Child, DisclosureEntry, Program, Run
from tests.airflow_fixtures import migrated_airflow
from tests.conftest import PROJECT
from tests.pii import PiiScan, run_texts
from tests.templates import seeded_sqlite

pytestmark = pytest.mark.airflow
BROKEN = "type: local\nrecipient: VT-AOE\nagreements: [vt-aoe-ecids]\nschedule: every night\n"


def datashare(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("datashare")), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def prepared_root(root: Path, destinations: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A seeded program database, config (agreements + ``destinations`` as YAML text) and
    demo keys under ``root``; returns the database URL and the environment to run in."""
    config = root / "config"
    shutil.copytree(PROJECT / "config" / "agreements", config / "agreements")
    (config / "destinations").mkdir()
    for name, text in destinations.items():
        (config / "destinations" / f"{name}.yaml").write_text(text)
    url = seeded_sqlite(root / "program.db", children=300, seed_value=11)  # a copy, seeded once
    migrated_airflow(root / "state")  # a copy of Airflow's metadata database, migrated once
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATASHARE_", "AIRFLOW"))},
        "DATASHARE_DATABASE_URL": url,
        "DATASHARE_CONFIG_DIR": str(config),
        "DATASHARE_STATE_DIR": str(root / "state"),
    }
    assert datashare(root, env, "keys", "init-demo").returncode == 0
    return url, env


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    root = tmp_path_factory.mktemp("nightly")
    demo = (PROJECT / "config" / "destinations" / "demo.yaml").read_text()
    # a broken destination file beside it must not stop the demo's DAG
    url, env = prepared_root(root, {"demo": demo, "broken": BROKEN})
    command = [str(Path(sys.executable).with_name("datashare")), "run", "demo"]
    command += ["--date", DEMO_DATE.isoformat()]
    with subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:  # its pid: the process that ran the night
        stdout, stderr = process.communicate()
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    engine = make_engine(url)
    with engine.connect() as connection:
        children = pd.DataFrame(connection.execute(select(Child)).mappings().all())
        logged = connection.execute(select(DisclosureEntry)).all()
        runs = connection.execute(select(Run.status, Run.summary)).all()
    engine.dispose()
    return {
        "root": root,
        "url": url,
        "env": env,
        "result": result,
        "pid": process.pid,
        "children": children,
        "logged": logged,
        "runs": runs,
    }


def test_demo_dag_runs_in_airflow_and_delivers_what_it_logs(nightly: dict) -> None:  # type: ignore[type-arg]
    result = nightly["result"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "success" in result.stdout
    files = sorted((nightly["root"] / "out" / "demo" / DEMO_DATE.isoformat()).rglob("*.csv"))
    assert {f.parent.name for f in files} == {"VT-HS-01", "VT-EHS-02"}
    identity = pd.concat(
        pd.read_csv(f, dtype=str) for f in files if f.name == "hs_child_identity.csv"
    )
    assert len(identity) == len(nightly["logged"]) > 0
    [(status, summary)] = nightly["runs"]
    assert status == "success" and summary["children"]["logged"] == len(identity)


def test_the_night_runs_in_the_datashare_process_and_airflow_speaks_to_its_log_only(
    nightly: dict,  # type: ignore[type-arg]
) -> None:
    """One interpreter's start-up for the night: every task ran in the process the person
    started (Airflow records each task's pid), and what Airflow said is in the run's log, not
    on the screen."""
    with sqlite3.connect(nightly["root"] / "state" / "airflow" / "airflow.db") as db:
        pids = {pid for (pid,) in db.execute("SELECT pid FROM task_instance")}
    assert pids == {nightly["pid"]}
    result = nightly["result"]
    [log] = re.findall(r"Airflow's log \(technical details\): (\S+)", result.stdout)
    said = Path(log).read_text()
    assert "[DAG TEST] end task task_id=verdict" in said and "DagRun Finished" in said
    assert "[DAG TEST]" not in result.stdout + result.stderr
    assert result.stderr == ""


NIGHT_THEN_DEFERRED = """
import sys
from pipelines.cli import main
sys.argv = ["datashare", "run", "demo", "--date", sys.argv[1]]
try:
    main()
finally:
    from pipelines.dags_test import UNUSED
    from pipelines.quality.context import DEFERRED
    ge = "great_expectations" in sys.modules
    print(ge, *(type(sys.modules.get(name)).__name__ for name in (*UNUSED, *DEFERRED)))
"""


def test_a_night_never_loads_what_it_deferred(tmp_path: Path) -> None:
    """What ``datashare run`` defers (Airflow's and Great Expectations' imports that a night
    never uses: ``pipelines.dags_test.UNUSED``, ``pipelines.quality.context.DEFERRED``) is
    still a stand-in when a whole night has run, its gates included."""
    demo = (PROJECT / "config" / "destinations" / "demo.yaml").read_text()
    _, env = prepared_root(tmp_path, {"demo": demo})
    result = subprocess.run(
        [sys.executable, "-c", NIGHT_THEN_DEFERRED, DEMO_DATE.isoformat()],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "success" in result.stdout
    ge, *kinds = result.stdout.strip().splitlines()[-1].split()
    assert ge == "True" and len(kinds) == 7 and set(kinds) == {"Deferred"}, kinds


SIGNAL_WHILE_PREPARING = """
import os, signal, sys
import pipelines.tasks
prepare_shard = pipelines.tasks.prepare_shard
number = signal.Signals[sys.argv[2]]
def signalled(run, programs):  # as a terminal's Ctrl-C, or `kill`, signals it while it prepares
    os.kill(os.getpid(), number)
    return prepare_shard(run, programs)
pipelines.tasks.prepare_shard = signalled
signal.signal(signal.SIGINT, signal.default_int_handler)  # taken even if started ignoring it
from pipelines.cli import main
sys.argv = ["datashare", "run", "demo", "--date", sys.argv[1]]
main()
"""


@pytest.mark.parametrize(
    ("number", "code", "prepared", "said"),
    [
        ("SIGINT", 130, "failed", ""),  # Airflow's task runner fails the task
        ("SIGTERM", 143, "success", "datashare run demo: the night was stopped by SIGTERM; "
                                    "no task started after it\n"),  # on_kill; the task goes on
    ],
)  # fmt: skip
def test_ctrl_c_or_sigterm_while_a_shard_prepares_stops_the_night_after_that_task(
    tmp_path: Path, number: str, code: int, prepared: str, said: str
) -> None:
    """Ctrl-C exits with 130, SIGTERM with 143 and a line saying so, as a separate Airflow
    process would have; neither prints a summary. The task it hit ends as Airflow's task
    runner ends it, and no later task starts: nothing is delivered or logged."""
    demo = (PROJECT / "config" / "destinations" / "demo.yaml").read_text()
    url, env = prepared_root(tmp_path, {"demo": demo})
    result = subprocess.run(
        [sys.executable, "-c", SIGNAL_WHILE_PREPARING, DEMO_DATE.isoformat(), number],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == code, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Run demo-" not in result.stdout and result.stderr == said
    with sqlite3.connect(tmp_path / "state" / "airflow" / "airflow.db") as db:
        states = dict(db.execute("SELECT task_id, state FROM task_instance").fetchall())
    assert states == {
        "plan": "success", "shards": "success", "shard.prepare": prepared,
        "shard.deliver": None, "finish": None, "verdict": None,
    }  # fmt: skip
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == [], "nothing arrived"
    engine = make_engine(url)
    with engine.connect() as connection:
        assert connection.execute(select(DisclosureEntry)).first() is None
    engine.dispose()


def test_no_task_log_xcom_or_validation_result_names_a_child(nightly: dict) -> None:  # type: ignore[type-arg]
    engine = make_engine(nightly["url"])
    scan = PiiScan.of_database(engine, except_dates=[DEMO_DATE])
    engine.dispose()
    delivered = next((nightly["root"] / "out").rglob("hs_child_identity.csv")).read_text()
    assert {"children.first_name", "children.birth_date"} <= scan.sees(delivered), "it can see"
    result = nightly["result"]
    texts = run_texts(nightly["root"] / "state", result.stdout, result.stderr)
    assert any(where.startswith("reports") for where in texts), "validation reports were kept"
    assert texts["xcom"], "the run left XCom values to check"
    assert scan.findings(texts) == []


def test_a_broken_destination_file_is_an_airflow_import_error_naming_its_line(
    nightly: dict,  # type: ignore[type-arg]
) -> None:
    """The demo's DAG ran beside it (above); Airflow's own CLI lists the broken file's line as
    the import error of the errors' DAG file only, and ``datashare run`` says the same."""
    root, env = nightly["root"], nightly["env"]
    airflow_env = env | {
        "AIRFLOW_HOME": str(root / "state" / "airflow"),
        "AIRFLOW_CONFIG": str(PROJECT / "airflow.cfg"),
        "DATASHARE_HOME": str(PROJECT),
        "PYTHONPATH": str(PROJECT),
    }
    command = [str(Path(sys.executable).with_name("airflow")), "dags", "list-import-errors"]
    listed = subprocess.run(
        [*command, "--local", "--output", "json"],
        env=airflow_env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    errors = json.loads(listed.stdout.strip().splitlines()[-1])  # after Airflow's log lines
    assert [Path(e["filepath"]).name for e in errors] == ["datashare_destination_errors.py"]
    broken = root / "config" / "destinations" / "broken.yaml"
    assert f"{broken}:4: schedule: " in errors[0]["error"]
    assert "demo.yaml" not in errors[0]["error"]
    run = datashare(root, env, "run", "broken", "--date", DEMO_DATE.isoformat())
    assert run.returncode != 0
    said = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert len(said) == 1 and f"{broken}:4: schedule: " in said[0], said


EDFI_DESTINATION = """
type: edfi
recipient: MO-DESE
agreements: [mo-dese-consent]
timeout_seconds: 10
edfi:
  base_url: {base_url}
  data_standard: {data_standard}
  credentials: {{client_id_env: TEST_EDFI_KEY, client_secret_env: TEST_EDFI_SECRET}}
  education_organizations:
    default: {{school_id: 255901001, education_organization_id: 255901}}
"""


@pytest.mark.parametrize("data_standard", [5, 6])
def test_edfi_destination_through_the_nightly_dag_matches_the_log(
    tmp_path: Path, data_standard: int
) -> None:
    from tests.edfi.contract_server import EdfiContractServer

    with EdfiContractServer(data_standard) as server:
        text = EDFI_DESTINATION.format(base_url=server.base_url, data_standard=data_standard)
        url, env = prepared_root(tmp_path, {"mo-edfi": text})
        env |= {"TEST_EDFI_KEY": "datashare", "TEST_EDFI_SECRET": "datashare-secret"}
        result = datashare(tmp_path, env, "run", "mo-edfi", "--date", DEMO_DATE.isoformat())
        assert result.returncode == 0, result.stdout[-3000:]
        students = server.held("students")
    engine = make_engine(url)
    with engine.connect() as connection:
        logged = connection.execute(
            select(DisclosureEntry.program_code, DisclosureEntry.child_local_id)
        ).all()
        children = {
            (r.program_code, r.local_id): r
            for r in connection.execute(
                select(Program.code.label("program_code"), Child.local_id, Child.first_name,
                       Child.last_name, Child.birth_date).join(Program)
            )
        }  # fmt: skip
    engine.dispose()
    expected = {
        (children[key].first_name, children[key].last_name, children[key].birth_date.isoformat())
        for key in logged
    }
    held = {(s["firstName"], s["lastSurname"], s["birthDate"]) for s in students}
    assert held == expected and len(held) == len(logged) > 0


def test_when_one_program_of_a_shard_stops_then_the_other_is_delivered_and_the_run_fails(
    tmp_path: Path,
) -> None:
    from tests.smtp_server import SmtpTestServer, text_of

    demo = (PROJECT / "config" / "destinations" / "demo.yaml").read_text()
    demo += "alerts:\n  email: [data-manager@example.org]\n  smtp_conn_id: datashare_smtp\n"
    url, env = prepared_root(tmp_path, {"demo": demo})
    engine = make_engine(url)
    with engine.begin() as connection:  # every child of one program fails the input gate
        program = select(Program.id).where(Program.code == "VT-EHS-02").scalar_subquery()
        connection.execute(
            update(Child).where(Child.program_id == program).values(birth_date=dt.date(2030, 1, 1))
        )
    with SmtpTestServer() as smtp:
        env["AIRFLOW_CONN_DATASHARE_SMTP"] = smtp.uri
        result = datashare(tmp_path, env, "run", "demo", "--date", DEMO_DATE.isoformat())
        mails = smtp.messages
    assert result.returncode == 1, result.stdout[-3000:]
    assert "VT-EHS-02: stopped at prepare (gate_failed): BatchStopped:" in result.stdout
    [mail] = mails
    alert = text_of(mail)
    assert "VT-EHS-02" in alert and "gate_failed" in alert and "partial" in alert
    with engine.connect() as connection:
        names = set(connection.scalars(select(Child.last_name))) | set(
            connection.scalars(select(Child.first_name))
        )
    assert not [n for n in names if len(n) > 2 and re.search(rf"\b{re.escape(n)}\b", alert)]
    files = (tmp_path / "out" / "demo" / DEMO_DATE.isoformat()).rglob("hs_child_identity.csv")
    assert {f.parent.name for f in files} == {"VT-HS-01"}, "the other program was delivered"
    with engine.connect() as connection:
        [(status, summary)] = connection.execute(select(Run.status, Run.summary)).all()
        logged = connection.scalars(select(DisclosureEntry.program_code).distinct()).all()
    engine.dispose()
    assert status == "partial" and summary["programs"]["stopped"] == ["VT-EHS-02"]
    assert logged == ["VT-HS-01"]
    airflow_db = tmp_path / "state" / "airflow" / "airflow.db"
    with sqlite3.connect(airflow_db) as connection:
        [(state,)] = connection.execute("SELECT state FROM dag_run").fetchall()
        tasks = dict(
            connection.execute(
                "SELECT task_id || ':' || coalesce(rendered_map_index, ''), state "
                "FROM task_instance"
            ).fetchall()
        )
    assert state == "failed", "the Airflow run is red"
    shard = "VT-EHS-02 … VT-HS-01 (2, 1 stopped)"  # both programs in one shard, named
    assert tasks[f"shard.prepare:{shard}"] == "success", tasks
    assert tasks[f"shard.deliver:{shard}"] == "success"
    assert tasks["finish:"] == "success" and tasks["verdict:"] == "failed"
