"""The console in real headless Chromium inside a real ``airflow api-server``: log in through
Airflow's login page, open the console from Airflow's menu, walk runs -> run detail -> the
children behind one reason -> a child's disclosures, switch an AIAN program's opt-in on
through the form (the next dry run includes the program) and off again (it does not). Every
page is screenshotted as a test artifact; afterwards the api-server's log holds no child name
or birth date.

Needs Debian's ``chromium`` (``.ci/run`` installs it) and the ``playwright`` package; the
browser Playwright would download is not used.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from pipelines.submission.plan import plan_run
from privacy.participation import history
from schemas import Child, DisclosureEntry, Program, Run
from tests.console.server import ApiServer
from tests.console.world import forget_changes
from tests.pipelines.submission.conftest import World

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
USERS = {"ada": "admin", "uma": "user", "vera": "viewer"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $DATASHARE_TEST_ARTIFACTS/console, else a temporary folder."""
    root = os.environ.get("DATASHARE_TEST_ARTIFACTS")
    folder = Path(root) / "console" if root else tmp_path_factory.mktemp("console-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def server(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The api-server with the plugin, reading the world's database and config."""
    settings = world.settings
    environ = {
        **settings.environ(),
        "AIRFLOW__API_AUTH__JWT_SECRET": "console-browser-test-" + "1" * 48,
    }
    running = ApiServer(tmp_path_factory.mktemp("airflow-home"), USERS, environ).start()
    yield running
    running.stop()


def test_walk_the_console_inside_airflow(world: World, server: ApiServer, artifacts: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with Session(world.engine) as session:
        mo_run = session.scalar(
            select(Run.id).where(Run.destination == "mo-demo").order_by(Run.started_at.desc())
        )
        program, child = session.execute(
            select(DisclosureEntry.program_code, DisclosureEntry.child_local_id).limit(1)
        ).one()
        last_name = session.scalar(
            select(Child.last_name).join(Program)
            .where(Program.code == program, Child.local_id == child)
        )  # fmt: skip
        kept = len(history(session, "NM-AIAN-06"))
    shots: list[Path] = []
    planned: list[str] = []

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1300})

        def shot(name: str) -> None:
            path = artifacts / f"{len(shots) + 1:02d}-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            shots.append(path)

        try:
            # Airflow's own login page, then the console from Airflow's menu
            page.goto(f"{server.url}/")
            page.get_by_label("Username").fill("ada")
            page.get_by_label("Password").fill(server.passwords()["ada"])
            shot("airflow-login")
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda url: "/auth/login" not in url)
            page.get_by_role("link", name="Datashare").click()
            page.wait_for_url("**/plugin/datashare")
            console = page.frame_locator("iframe")
            console.get_by_role("heading", name="Runs", exact=True).wait_for()
            assert console.locator("svg.chart").count() == 1
            shot("runs")

            # runs -> run detail -> the children behind one reason -> a child's disclosures
            console.get_by_role("link", name=mo_run).click()
            console.get_by_role("heading", name=f"Run {mo_run}", exact=True).wait_for()
            shot("run-detail")
            console.locator('a[aria-label^="children behind"]').first.click()
            console.get_by_role("caption").filter(has_text="Children and fields").wait_for()
            assert console.locator("tbody tr").count() >= 1
            shot("children-behind-a-reason")
            console.get_by_role("link", name="disclosures", exact=True).first.click()
            console.get_by_role("heading", name="Record of disclosures", exact=True).wait_for()
            shot("a-childs-disclosures")

            # find a child who was disclosed: by local id, and by name (a POST)
            console.get_by_role("link", name="A child's disclosures").click()
            console.locator("form[method=post] select[name=program]").select_option(program)
            console.get_by_label("Name").fill(last_name)
            console.get_by_role("button", name="Find").click()
            console.get_by_role("link", name=child, exact=True).click()
            console.get_by_role("heading", name="Record of disclosures", exact=True).wait_for()
            assert console.locator("tbody tr").first.inner_text().startswith("20")
            shot("disclosures-printable")

            # the AIAN opt-in: shares nothing, then on through the form, then off again
            console.get_by_role("link", name="Programs", exact=True).click()
            console.get_by_role("link", name="NM-AIAN-06").click()
            console.locator("#opt-in-form").wait_for()
            assert console.get_by_text("shares nothing").count() >= 1
            shot("aian-program-shares-nothing")
            opt_in = console.locator("#opt-in-form")
            opt_in.get_by_label("Authority").fill("Tribal Council Resolution 2026-31")
            opt_in.get_by_label("race", exact=True).check()
            opt_in.get_by_label("Why").fill("council vote of 2026-11-30")
            opt_in.get_by_role("button", name="Review the opt-in").click()
            console.get_by_text("Starts").first.wait_for()
            shot("opt-in-confirmation")
            console.get_by_role("button", name="Confirm and record").click()
            console.get_by_role("heading", name="History", exact=True).wait_for()
            shot("opt-in-recorded")
            planned.append(_dry_run(world, shares=True))

            opt_out = console.locator("#opt-out-form")
            opt_out.get_by_label("Why").fill("council rescinded")
            opt_out.get_by_role("button", name="Review the opt-out").click()
            console.get_by_text("Stops").first.wait_for()
            shot("opt-out-confirmation")
            console.get_by_role("button", name="Confirm and record").click()
            console.get_by_role("heading", name="History", exact=True).wait_for()
            planned.append(_dry_run(world, shares=False))

            # agreements and the ledgers
            console.get_by_role("link", name="Agreements", exact=True).click()
            console.get_by_role("link", name="vt-aoe-ecids").click()
            console.get_by_role("heading", name="Fields that leave, and how", exact=True).wait_for()
            shot("agreement")
            console.get_by_role("link", name="Ledger integrity").click()
            console.get_by_role("heading", name="Ledger integrity", exact=True).wait_for()
            # the world is shared: this page may already show another test's finished job, so
            # wait for the console's frame to reach the new job's own page before reading it
            frame = next(f for f in page.frames if f.url.endswith("/ledgers"))
            console.get_by_role("button", name="Verify both ledgers now").click()
            frame.wait_for_url("**/ledgers/jobs/*")
            # the job runs in the background; its page refreshes itself until it is done
            console.get_by_text("all intact").wait_for()
            console.get_by_text("Verified: ").last.wait_for()  # the page may still be loading
            assert console.locator(".status-success").count() == 3  # the job, both ledgers
            assert console.get_by_text("Verified: ").count() == 2
            shot("ledger-integrity")
        finally:
            browser.close()
            forget_changes(world, "NM-AIAN-06", kept)
            with Session(world.engine) as session, session.begin():
                session.execute(delete(Run).where(Run.id.in_(planned)))

    assert len(shots) == 12 and all(p.stat().st_size > 10_000 for p in shots)
    with Session(world.engine) as session:
        runs = [session.get(Run, r) for r in planned]
    assert all(r is None for r in runs)  # cleaned up; what the plans said is checked below
    server.stop()
    _assert_no_child_pii_in(server.log.read_text(errors="replace"), world)


def _dry_run(world: World, *, shares: bool) -> str:
    """Plan tonight's dry run to New Mexico; assert whether NM-AIAN-06 takes part."""
    plan = plan_run("nm-demo", dt.date.today(), dry_run=True, settings=world.settings)
    if shares:
        assert "NM-AIAN-06" in plan["programs"]
    else:
        assert "NM-AIAN-06" not in plan["programs"]
        assert plan["skipped_programs"]["NM-AIAN-06"] == "aian_no_opt_in"
    with Session(world.engine) as session, session.begin():  # a plan only: close its run
        session.execute(update(Run).where(Run.id == plan["run_id"]).values(status="abandoned"))
    return str(plan["run_id"])


def _assert_no_child_pii_in(log: str, world: World) -> None:
    assert "path=/datashare/children/search" in log  # the walk is in the log: the scan counts
    with Session(world.engine) as session:
        children = session.execute(
            select(Child.first_name, Child.last_name, Child.birth_date)
        ).all()
    for first, last, born in children:
        for text in (f"{first} {last}", f"{first}+{last}", f"{first}%20{last}",
                     born.isoformat(), born.strftime("%m/%d/%Y")):  # fmt: skip
            assert text not in log, "a child's name or birth date is in the api-server log"
    surnames = {last for _, last, _ in children if len(last) >= 5}
    words = set(re.findall(r"[A-Za-z]{5,}", log))
    assert not surnames & words, "a child's last name is in the api-server log"


def test_readme_screenshots_are_the_walks_own(artifacts: Path) -> None:
    """The README shows two pages of this walk: they exist as PNG files in docs/ and, when
    asked (DATASHARE_UPDATE_DOCS=1), are refreshed from this run's screenshots."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    pairs = (("02-runs", "console-runs"), ("08-opt-in-confirmation", "console-opt-in"))
    if os.environ.get("DATASHARE_UPDATE_DOCS"):
        docs.mkdir(exist_ok=True)
        for shot, name in pairs:
            shutil.copy(artifacts / f"{shot}.png", docs / f"{name}.png")
    for _, name in pairs:
        assert (docs / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
