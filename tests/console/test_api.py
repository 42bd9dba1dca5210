"""Every console endpoint: 401 without a login (JSON) or a redirect to Airflow's login (pages),
403 for each role that must not see or change a thing, CSRF refusal, and what each shows."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from pipelines import job_owners as owners
from pipelines.review import agreement_warnings
from privacy.agreements import load_agreement
from privacy.participation import history
from schemas import (
    Child,
    DisclosureAccess,
    DisclosureEntry,
    LedgerVerifyJob,
    Program,
    RedactionEntry,
    Run,
)
from tests.console.conftest import login
from tests.console.world import forget_changes
from tests.pipelines.submission.conftest import PROJECT, World

ROLES = ["vera", "uma", "otto", "ada"]  # viewer, data manager (USER), data manager (OP), admin
RANK = {"vera": 1, "uma": 2, "otto": 2, "ada": 3, "nora": 0}
HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}


@dataclass(frozen=True)
class Ids:
    run: str
    reason: str
    program: str
    child: str
    dry_run_free_destination: str


@pytest.fixture(scope="module")
def ids(world: World) -> Ids:
    with Session(world.engine) as session:
        run = session.scalar(
            select(Run.id).where(Run.destination == "mo-demo").order_by(Run.started_at.desc())
        )
        reason, _ = session.execute(
            select(RedactionEntry.reason_code, RedactionEntry.program_code)
            .where(RedactionEntry.run_id == run, RedactionEntry.field.is_(None))
            .order_by(RedactionEntry.seq)
        ).first()
        program_code, child = session.execute(
            select(DisclosureEntry.program_code, DisclosureEntry.child_local_id).limit(1)
        ).one()
    return Ids(run, reason, program_code, child, "vt-demo")


def endpoints(ids: Ids) -> list[tuple[str, int]]:
    """Every GET page and the lowest role rank that may see it."""
    return [
        ("/runs", 1),
        ("/runs?format=csv", 1),
        ("/runs?format=json", 1),
        (f"/runs/{ids.run}", 1),
        (f"/runs/{ids.run}?format=json", 1),
        (f"/runs/{ids.run}/reasons/{ids.reason}", 2),
        (f"/runs/{ids.run}/reasons/{ids.reason}?format=csv", 2),
        ("/children", 2),
        (f"/children/{ids.program}/{ids.child}", 2),
        (f"/children/{ids.program}/{ids.child}?format=json", 2),
        ("/programs", 1),
        ("/programs?format=json", 1),
        ("/programs/NM-AIAN-06", 1),
        ("/programs/NM-AIAN-06?format=csv", 1),
        ("/agreements", 1),
        ("/agreements?format=json", 1),
        ("/agreements/vt-aoe-ecids", 1),
        ("/agreements/vt-aoe-ecids?format=csv", 1),
        ("/ledgers", 1),
    ]


POSTS = [  # path, lowest rank that may post
    ("/children/search", 2),
    ("/programs/NM-AIAN-06/change", 3),
    ("/ledgers/verify", 1),
]


def csrf(client: TestClient, page: str = "/ledgers") -> str:
    """Open a page as a browser would and take the form token it sets."""
    response = client.get(page, headers=HTML)
    assert response.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    assert token is not None
    return token.group(1)


# -- who gets in ---------------------------------------------------------------------------


def test_without_login_every_page_answers_401_json(client: TestClient, ids: Ids) -> None:
    for path, _ in endpoints(ids):
        response = client.get(path, headers=JSON)
        assert response.status_code == 401, path
        assert response.json() == {"detail": "Not authenticated"}
    for path, _ in POSTS:
        assert client.post(path, data={}, headers=JSON).status_code == 401, path


def test_without_login_a_browser_is_sent_to_airflows_login(client: TestClient, ids: Ids) -> None:
    response = client.get(f"/runs/{ids.run}", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/auth/login?next=")
    assert ids.run in response.headers["location"]


@pytest.mark.parametrize("token", ["not-a-jwt", "eyJhbGciOiJIUzUxMiJ9.e30.c2ln"])
def test_a_forged_or_malformed_token_is_not_a_login(client: TestClient, token: str) -> None:
    response = client.get("/runs", headers={**JSON, "Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_a_token_signed_with_another_secret_is_not_a_login(client: TestClient) -> None:
    import jwt

    forged = jwt.encode({"sub": "ada", "role": "ADMIN"}, "another-secret" * 5, algorithm="HS512")
    response = client.get("/runs", headers={**JSON, "Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


@pytest.mark.parametrize("user", [*ROLES, "nora"])
def test_each_role_sees_exactly_the_pages_of_its_rank(
    client: TestClient, tokens: dict[str, str], ids: Ids, user: str
) -> None:
    headers = {**JSON, "Authorization": f"Bearer {tokens[user]}"}
    for path, needed in endpoints(ids):
        response = client.get(path, headers=headers)
        expected = 200 if RANK[user] >= needed else 403
        assert response.status_code == expected, (user, path, response.text[:200])


def test_a_verify_job_page_is_refused_to_a_user_without_a_console_role(
    client: TestClient, tokens: dict[str, str]
) -> None:
    """A job's page answers by rank before it looks the job up: 403, not 404, for nora."""
    headers = {**JSON, "Authorization": f"Bearer {tokens['nora']}"}
    assert client.get("/ledgers/jobs/1", headers=headers).status_code == 403
    headers = {**JSON, "Authorization": f"Bearer {tokens['vera']}"}
    assert client.get("/ledgers/jobs/999999", headers=headers).status_code == 404


@pytest.mark.parametrize("user", [*ROLES, "nora"])
def test_each_role_may_post_only_at_its_rank(
    client: TestClient, tokens: dict[str, str], user: str
) -> None:
    login(client, tokens[user])
    token = csrf(client) if RANK[user] else "none"
    for path, needed in POSTS:
        response = client.post(path, data={"csrf_token": token}, headers=JSON)
        if RANK[user] < needed:
            assert response.status_code == 403, (user, path)
        else:  # allowed: the form is judged on its content (an empty change is refused)
            expected = (202,) if path == "/ledgers/verify" else (200, 400)
            assert response.status_code in expected, (user, path, response.text[:200])
            if response.status_code == 202:  # let the verify job end before the next test
                client.app.state.console.jobs[response.json()["job"]].join()  # type: ignore[attr-defined]


# -- CSRF ----------------------------------------------------------------------------------


def test_a_change_without_the_csrf_token_is_refused(client: TestClient, tokens) -> None:  # type: ignore[no-untyped-def]
    login(client, tokens["ada"])
    csrf(client)
    form = {"action": "withdraw", "recipient": "NM-ECECD", "reason": "x", "step": "confirm"}
    response = client.post("/programs/NM-HS-05/change", data=form, headers=HTML)
    assert response.status_code == 403
    assert "security token" in response.text


def test_a_token_from_another_user_or_without_its_cookie_is_refused(
    client: TestClient, tokens: dict[str, str]
) -> None:
    login(client, tokens["uma"])
    umas = csrf(client)
    login(client, tokens["ada"])
    client.cookies.set("datashare_csrf", umas)  # a token signed for someone else
    form = {"csrf_token": umas, "action": "withdraw", "recipient": "NM-ECECD", "reason": "x"}
    assert client.post("/programs/NM-HS-05/change", data=form).status_code == 403
    login(client, tokens["ada"])
    adas = csrf(client)
    login(client, tokens["ada"])  # the form's token alone, without its cookie, is not enough
    form["csrf_token"] = adas
    assert client.post("/programs/NM-HS-05/change", data=form).status_code == 403


def test_a_post_from_another_origin_is_refused(client: TestClient, tokens) -> None:  # type: ignore[no-untyped-def]
    login(client, tokens["ada"])
    token = csrf(client)
    response = client.post(
        "/ledgers/verify",
        data={"csrf_token": token},
        headers={**JSON, "Origin": "https://evil.example"},
    )
    assert response.status_code == 403


# -- what the pages show -------------------------------------------------------------------


def test_runs_show_honest_counts_and_a_chart_readable_without_colour(
    client: TestClient, tokens: dict[str, str], world: World
) -> None:
    login(client, tokens["vera"])
    rows = client.get("/runs?format=json&destination=mo-demo").json()
    assert len(rows) == 2 and {r["destination"] for r in rows} == {"mo-demo"}
    with Session(world.engine) as session:
        for row in rows:
            run = session.get(Run, row["run"])
            assert row["withheld"] == sum(run.summary["withheld_by_reason"].values()) > 0
            assert row["considered"] == run.summary["children"]["considered"]
    html = client.get("/runs?destination=mo-demo", headers=HTML).text
    assert "<svg" in html and "url(#p-diag)" in html  # patterns, not colour alone
    assert "no written consent on file" in html  # the legend says each reason in words


def test_an_unfinished_run_is_shown_as_unfinished(
    client: TestClient, tokens: dict[str, str], world: World
) -> None:
    with Session(world.engine) as session, session.begin():
        session.add(Run(id="mo-demo-stuck", destination="mo-demo", run_date=dt.date(2026, 11, 1),
                        status="running", started_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                        summary={}))  # fmt: skip
    try:
        login(client, tokens["vera"])
        rows = client.get("/runs?format=json&destination=mo-demo").json()
        assert {r["run"]: r["status"] for r in rows}["mo-demo-stuck"] == "unfinished"
    finally:
        with Session(world.engine) as session, session.begin():
            session.delete(session.get(Run, "mo-demo-stuck"))


def test_run_detail_shows_rows_delivered_and_deleted_apart(
    client: TestClient, tokens: dict[str, str], world: World
) -> None:
    summaries = {
        "mo-demo-rows": {"dry_run": False, "rows_delivered": {"hs_enrollment.csv": 12},
                         "rows_deleted": {"hs_enrollment.csv": 2}},
        "mo-demo-old": {"dry_run": False, "rows_delivered": {"hs_enrollment.csv": 5}},
    }  # fmt: skip
    with Session(world.engine) as session, session.begin():
        for run_id, summary in summaries.items():
            session.add(Run(id=run_id, destination="mo-demo", run_date=dt.date(2026, 11, 2),
                            status="success", started_at=dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
                            finished_at=dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
                            summary=summary))  # fmt: skip
    try:
        login(client, tokens["vera"])
        html = client.get("/runs/mo-demo-rows", headers=HTML).text
        assert "<dt>Rows delivered</dt><dd>hs_enrollment.csv: 12</dd>" in html
        assert "<dt>Rows deleted</dt><dd>hs_enrollment.csv: 2</dd>" in html
        html = client.get("/runs/mo-demo-old", headers=HTML).text
        assert "<dt>Rows delivered</dt><dd>hs_enrollment.csv: 5</dd>" in html
        assert "Rows deleted" not in html
    finally:
        with Session(world.engine) as session, session.begin():
            for run_id in summaries:
                session.delete(session.get(Run, run_id))


def test_run_detail_gives_reasons_in_plain_words_with_citations(
    client: TestClient, tokens: dict[str, str], ids: Ids
) -> None:
    login(client, tokens["vera"])
    groups = client.get(f"/runs/{ids.run}?format=json").json()
    assert groups and all(g["citation"].startswith(("45 CFR", "34 CFR")) for g in groups)
    html = client.get(f"/runs/{ids.run}", headers=HTML).text
    assert "Input quarantine, by rule" in html and "Validation" in html
    assert f"/runs/{ids.run}/reasons/" not in html  # a viewer gets no drill-down links


def test_children_behind_a_reason_have_names_for_data_managers_but_not_in_exports(
    client: TestClient, tokens: dict[str, str], ids: Ids, world: World
) -> None:
    login(client, tokens["uma"])
    rows = client.get(f"/runs/{ids.run}/reasons/{ids.reason}?format=json").json()
    assert rows and {r["reason"] for r in rows} == {ids.reason}
    first = rows[0]
    with Session(world.engine) as session:
        child = session.execute(
            select(Child.first_name, Child.last_name)
            .join(Program)
            .where(Program.code == first["program"], Child.local_id == first["subject"])
        ).one()
    name = f"{child.first_name} {child.last_name}"
    assert name in client.get(f"/runs/{ids.run}/reasons/{ids.reason}", headers=HTML).text
    csv = client.get(f"/runs/{ids.run}/reasons/{ids.reason}?format=csv").text
    assert first["subject"] in csv and child.last_name not in csv


def test_a_childs_disclosures_are_listed_and_the_look_is_recorded(
    client: TestClient, tokens: dict[str, str], ids: Ids, world: World
) -> None:
    login(client, tokens["otto"])
    rows = client.get(f"/children/{ids.program}/{ids.child}?format=json").json()
    with Session(world.engine) as session:
        logged = session.scalars(
            select(DisclosureEntry).where(
                DisclosureEntry.program_code == ids.program,
                DisclosureEntry.child_local_id == ids.child,
            )
        ).all()
        assert [r["seq"] for r in rows] == [e.seq for e in logged]
        assert all(r["legal_basis"] and r["purpose"] and r["fields"] for r in rows)
        looks = session.scalars(
            select(DisclosureAccess).where(DisclosureAccess.child_local_id == ids.child)
        ).all()
    assert looks[-1].viewer == "otto" and looks[-1].entries == len(rows)
    page = client.get(f"/children/{ids.program}/{ids.child}", headers=HTML).text
    assert "Record of disclosures" in page and "print.css" in page and "otto" in page


def test_finding_a_child_by_name_is_a_post_and_links_by_local_id(
    client: TestClient, tokens: dict[str, str], ids: Ids, world: World
) -> None:
    with Session(world.engine) as session:
        last = session.scalar(
            select(Child.last_name)
            .join(Program)
            .where(Program.code == ids.program, Child.local_id == ids.child)
        )
    login(client, tokens["uma"])
    token = csrf(client, "/children")
    response = client.post(
        "/children/search", data={"csrf_token": token, "program": ids.program, "name": last}
    )
    assert response.status_code == 200
    assert f"/children/{ids.program}/{ids.child}" in response.text
    links = re.findall(r'href="([^"]+)"', response.text)
    assert not [link for link in links if last in link]  # the name is never in a URL


def test_an_aian_program_without_opt_in_shares_nothing(
    client: TestClient, tokens: dict[str, str]
) -> None:
    login(client, tokens["vera"])
    rows = client.get("/programs?format=json").json()
    nm6 = next(r for r in rows if r["program"] == "NM-AIAN-06" and r["recipient"] == "NM-ECECD")
    assert nm6["state"] == "participating" and nm6["shares"] is False
    assert "shares nothing" in client.get("/programs/NM-AIAN-06", headers=HTML).text
    assert "opt-in-form" not in client.get("/programs/NM-AIAN-06", headers=HTML).text


def test_opt_in_is_reviewed_in_plain_words_then_recorded_as_the_logged_in_admin(
    client: TestClient, tokens: dict[str, str], world: World
) -> None:
    login(client, tokens["ada"])
    token = csrf(client, "/programs/NM-AIAN-06")
    form = {
        "csrf_token": token,
        "action": "opt_in",
        "authority": "Tribal Council Resolution 2026-30",
        "scope": "aggregate",
        "excluded": ["race", "ethnicity"],
        "effective": "2026-11-20",
        "reason": "council vote",
        "decided_by": "someone typed this",  # ignored: the login decides who did it
        "step": "review",
    }
    review = client.post("/programs/NM-AIAN-06/change", data=form)
    assert review.status_code == 200
    assert "Starts" in review.text and "NM-ECECD" in review.text
    assert "never: ethnicity, race" in review.text
    with Session(world.engine) as session:
        before = len(history(session, "NM-AIAN-06"))
    try:
        done = client.post("/programs/NM-AIAN-06/change", data={**form, "step": "confirm"})
        assert done.status_code == 303
        with Session(world.engine) as session:
            last = history(session, "NM-AIAN-06")[-1]
            assert len(history(session, "NM-AIAN-06")) == before + 1
        assert last.decided_by == "ada" and last.action.value == "opt_in"
        assert last.authority == "Tribal Council Resolution 2026-30"
        assert last.reason == "council vote"
        assert set(last.excluded_fields) == {"race", "ethnicity"}
        rows = client.get("/programs?format=json&on=2026-11-27").json()
        nm6 = next(r for r in rows if r["program"] == "NM-AIAN-06" and r["recipient"] == "NM-ECECD")
        assert nm6["shares"] is True
        # and off again, through the same forms: opt-out needs a reason
        out = {"csrf_token": token, "action": "opt_out", "effective": "2026-11-21",
               "reason": "council rescinded", "step": "confirm"}  # fmt: skip
        assert client.post("/programs/NM-AIAN-06/change", data=out).status_code == 303
        rows = client.get("/programs?format=json&on=2026-11-27").json()
        nm6 = next(r for r in rows if r["program"] == "NM-AIAN-06" and r["recipient"] == "NM-ECECD")
        assert nm6["shares"] is False
    finally:
        forget_changes(world, "NM-AIAN-06", before)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"action": "opt_in", "scope": "record", "reason": "r"}, "authority"),
        ({"action": "opt_out", "reason": ""}, "say why"),
        ({"action": "opt_in", "authority": "a", "reason": "r"}, "scope"),
        ({"action": "participate", "reason": "r"}, "recipient"),
    ],
)
def test_an_incomplete_change_is_refused_with_its_reason_and_nothing_recorded(
    client: TestClient, tokens: dict[str, str], world: World, form: dict, message: str
) -> None:
    with Session(world.engine) as session:
        before = len(history(session, "NM-AIAN-06"))
    login(client, tokens["ada"])
    token = csrf(client)
    response = client.post(
        "/programs/NM-AIAN-06/change", data={**form, "csrf_token": token, "step": "confirm"}
    )
    assert response.status_code == 400 and message in response.text
    with Session(world.engine) as session:
        assert len(history(session, "NM-AIAN-06")) == before


def test_opt_in_of_a_program_that_is_not_aian_is_refused(
    client: TestClient, tokens: dict[str, str]
) -> None:
    login(client, tokens["ada"])
    token = csrf(client)
    form = {"csrf_token": token, "action": "opt_in", "authority": "a", "scope": "record",
            "reason": "r", "step": "review"}  # fmt: skip
    response = client.post("/programs/VT-HS-01/change", data=form)
    assert response.status_code == 400 and "only to AIAN programs" in response.text


def test_agreements_page_lists_review_dates_and_explains_one(
    client: TestClient, tokens: dict[str, str]
) -> None:
    login(client, tokens["vera"])
    rows = client.get("/agreements?format=json").json()
    vt = next(r for r in rows if r["id"] == "vt-aoe-ecids")
    agreement = load_agreement(PROJECT / "config" / "agreements" / "vt-aoe-ecids.yaml")
    assert vt["review_due"] == agreement.review_due.isoformat()
    fields = client.get("/agreements/vt-aoe-ecids?format=json").json()
    assert {f["field"] for f in fields} == set(agreement.leaving())
    html = client.get("/agreements/vt-aoe-ecids", headers=HTML).text
    assert "What leaves" in html and "Which children qualify" in html


D = dt.date
TODAY = D(2026, 12, 2)
OVERDUE = "annual review overdue since 2026-12-01: runs withhold everything until it"


@pytest.mark.parametrize(
    ("expires", "reviewed", "expected"),
    [
        (D(2027, 1, 31), D(2026, 6, 1), ["expires on 2027-01-31, in 60 day(s)"]),
        (D(2027, 2, 1), D(2026, 6, 1), []),
        (D(2026, 12, 1), D(2026, 6, 1), ["expired on 2026-12-01"]),
        (None, D(2026, 1, 31), ["annual review due on 2027-01-31, in 60 day(s)"]),
        (None, D(2026, 2, 1), []),
        (None, D(2025, 12, 1), [OVERDUE]),
    ],
)
def test_agreement_warnings_at_the_60_day_boundary(
    expires: dt.date | None, reviewed: dt.date, expected: list[str]
) -> None:
    base = load_agreement(PROJECT / "config" / "agreements" / "vt-aoe-ecids.yaml")
    agreement = base.model_copy(update={"expires": expires, "last_reviewed": reviewed})
    assert agreement_warnings(agreement, TODAY) == expected


def run_job(app, client: TestClient, token: str, mode: str, accept: dict[str, str]) -> dict:  # type: ignore[no-untyped-def]
    """Start a verify job as a browser or a client would, wait for its thread, read it back."""
    response = client.post(
        "/ledgers/verify", data={"csrf_token": token, "mode": mode}, headers=accept
    )
    if accept is JSON:
        assert response.status_code == 202
        job_id = response.json()["job"]
    else:  # a browser is sent to the job's page at once
        assert response.status_code == 303
        job_id = int(response.headers["location"].rsplit("/", 1)[1])
    app.state.console.jobs[job_id].join()
    return client.get(f"/ledgers/jobs/{job_id}", headers=JSON).json()["job"]  # type: ignore[no-any-return]


def test_ledger_verify_runs_in_the_background_and_says_what_it_verified(
    app,
    client: TestClient,
    tokens: dict[str, str],
    world: World,  # type: ignore[no-untyped-def]
) -> None:
    login(client, tokens["vera"])
    token = csrf(client, "/ledgers")
    job = run_job(app, client, token, "routine", JSON)
    assert job["state"] == "done" and job["requested_by"] == "vera"
    assert [(r["ledger"], r["ok"]) for r in job["result"]["ledgers"]] == [
        ("disclosures", True),
        ("redactions", True),
    ]
    head = int(job["result"]["ledgers"][0]["head"].split(":")[0])
    assert job["result"]["recorded"].get("disclosures", head) == head  # checkpoint at the head
    assert "seq" in client.get("/ledgers", headers=HTML).text  # the page names the checkpoint
    with Session(world.engine) as session, session.begin():
        first = session.scalar(select(DisclosureEntry).order_by(DisclosureEntry.seq).limit(1))
        last = session.scalar(select(DisclosureEntry).order_by(DisclosureEntry.seq.desc()).limit(1))
        saved = {first.seq: first.purpose, last.seq: last.purpose}
        first_seq, last_seq = first.seq, last.seq
        session.execute(
            update(DisclosureEntry)
            .where(DisclosureEntry.seq == first_seq)
            .values(purpose="changed")
        )
    try:
        # routine: walks nothing before the checkpoint, and says so
        job = run_job(app, client, token, "routine", JSON)
        report = job["result"]["ledgers"][0]
        assert report["ok"] and report["verified"].startswith("incremental: nothing after")
        page = client.get(f"/ledgers/jobs/{job['id']}", headers=HTML).text
        assert "Routine verify" in page and "Verified: incremental" in page
        assert "only a full verify is a check here" in page  # the world's ledgers are unkeyed
        # full: every entry, the early edit found
        job = run_job(app, client, token, "full", HTML)
        page = client.get(f"/ledgers/jobs/{job['id']}", headers=HTML).text
        assert "Full verify" in page and "BROKEN" in page and "Verified: full: every entry" in page
        assert f"seq {first_seq} (id" in page and "edited" in page
        # a tamper of the newest entry: the routine verify catches it at the checkpoint
        with Session(world.engine) as session, session.begin():
            session.execute(
                update(DisclosureEntry).where(DisclosureEntry.seq == last_seq).values(purpose="x")
            )
        job = run_job(app, client, token, "routine", JSON)
        breaks = job["result"]["ledgers"][0]["breaks"]
        assert not job["result"]["ok"] and f"seq {last_seq}" in breaks[0]
        assert ": checkpoint: " in breaks[0]
    finally:
        with Session(world.engine) as session, session.begin():
            for seq, purpose in saved.items():
                session.execute(
                    update(DisclosureEntry)
                    .where(DisclosureEntry.seq == seq)
                    .values(purpose=purpose)
                )


def test_a_verify_mode_that_does_not_exist_is_refused(
    client: TestClient, tokens: dict[str, str]
) -> None:
    login(client, tokens["vera"])
    token = csrf(client, "/ledgers")
    response = client.post("/ledgers/verify", data={"csrf_token": token, "mode": "x"}, headers=JSON)
    assert response.status_code == 400
    assert client.get("/ledgers/jobs/999999", headers=JSON).status_code == 404


def test_unknown_run_and_agreement_are_404(client: TestClient, tokens: dict[str, str]) -> None:
    login(client, tokens["vera"])
    assert client.get("/runs/no-such-run", headers=JSON).status_code == 404
    assert client.get("/agreements/no-such", headers=JSON).status_code == 404


def test_pages_are_not_cached_and_set_a_strict_csrf_cookie(
    client: TestClient, tokens: dict[str, str]
) -> None:
    login(client, tokens["vera"])
    response = client.get("/runs", headers=HTML)
    assert response.headers["cache-control"] == "no-store"
    cookie = response.headers["set-cookie"].lower()
    assert "samesite=strict" in cookie and "httponly" in cookie


def test_a_running_job_is_followed_and_joined_and_a_stalled_one_says_so(
    client: TestClient, tokens: dict[str, str], world: World
) -> None:
    """One job at a time: a second request joins the running one; a job whose progress
    stopped (its process ended) is shown as stalled and no longer blocks a new one."""
    login(client, tokens["vera"])
    token = csrf(client, "/ledgers")
    now = dt.datetime.now(dt.UTC)
    with Session(world.engine) as session, session.begin():
        job = LedgerVerifyJob(mode="full", requested_by="uma", state="running", started_at=now,
                              updated_at=now, checked=350_000, total=1_200_000)  # fmt: skip
        session.add(job)
        session.flush()
        job_id = job.id
    try:
        page = client.get("/ledgers", headers=HTML).text
        assert f"Full verify #{job_id}" in page and "running" in page
        assert "350,000 of about 1,200,000 entries walked" in page
        assert 'http-equiv="refresh"' in page
        answer = client.post("/ledgers/verify", data={"csrf_token": token}, headers=JSON)
        assert answer.status_code == 202 and answer.json()["job"] == job_id
        with Session(world.engine) as session, session.begin():
            session.execute(
                update(LedgerVerifyJob)
                .where(LedgerVerifyJob.id == job_id)
                .values(updated_at=now - dt.timedelta(hours=1))
            )
        page = client.get(f"/ledgers/jobs/{job_id}", headers=HTML).text
        assert "stalled" in page and 'http-equiv="refresh"' not in page
        assert "the api-server restarted" in page and "Start a new verify" in page
        answer = client.post("/ledgers/verify", data={"csrf_token": token}, headers=JSON)
        assert answer.status_code == 202 and answer.json()["job"] != job_id
        client.app.state.console.jobs[answer.json()["job"]].join()  # type: ignore[attr-defined]
        # the new request marked the old job stalled in the database (no longer "running")
        with Session(world.engine) as session:
            old = session.get(LedgerVerifyJob, job_id)
            assert old is not None and old.state == "stalled" and old.finished_at is not None
        shown = client.get(f"/ledgers/jobs/{job_id}", headers=JSON).json()["job"]
        assert shown["state"] == "stalled" and "no heartbeat for 30 seconds" in shown["error"]
        latest = client.get("/ledgers", headers=JSON).json()["job"]
        assert latest["id"] == answer.json()["job"] and latest["state"] == "done"
    finally:
        with Session(world.engine) as session, session.begin():
            session.execute(delete(LedgerVerifyJob).where(LedgerVerifyJob.id == job_id))


def test_after_a_restart_the_orphaned_job_is_stalled_at_once_and_verify_starts_a_new_one(
    client: TestClient, tokens: dict[str, str], world: World
) -> None:
    """A job owned by a worker process of this host: joined while the worker lives; once it
    is killed (an api-server restart), shown stalled and replaced by the next click at once,
    though its progress and heartbeat are seconds old."""
    login(client, tokens["uma"])
    token = csrf(client, "/ledgers")
    worker = subprocess.Popen(["sleep", "600"])
    stat = Path(f"/proc/{worker.pid}/stat").read_text()
    here = owners.current()
    now = dt.datetime.now(dt.UTC)
    with Session(world.engine) as session, session.begin():
        job = LedgerVerifyJob(mode="full", requested_by="uma", state="running", started_at=now,
                              updated_at=now, heartbeat_at=now, checked=350_000,
                              total=1_200_000, owner_host=here.host, owner_space=here.space,
                              owner_pid=worker.pid,
                              owner_started=stat.rpartition(")")[2].split()[19])  # fmt: skip
        session.add(job)
        session.flush()
        job_id = job.id
    try:
        page = client.get("/ledgers", headers=HTML).text
        assert f"run by pid {worker.pid} on {here.host}" in page and "running" in page
        answer = client.post("/ledgers/verify", data={"csrf_token": token}, headers=JSON)
        assert answer.status_code == 202 and answer.json()["job"] == job_id
        worker.kill()
        worker.wait()
        page = client.get(f"/ledgers/jobs/{job_id}", headers=HTML).text
        assert "stalled" in page and 'http-equiv="refresh"' not in page
        assert f"(pid {worker.pid} on {here.host}) ended" in page and "Start a new verify" in page
        answer = client.post("/ledgers/verify", data={"csrf_token": token}, headers=JSON)
        assert answer.status_code == 202 and answer.json()["job"] != job_id
        client.app.state.console.jobs[answer.json()["job"]].join()  # type: ignore[attr-defined]
        shown = client.get(f"/ledgers/jobs/{job_id}", headers=JSON).json()["job"]
        assert shown["state"] == "stalled" and "api-server restarted" in shown["error"]
    finally:
        worker.kill()
        worker.wait()
        with Session(world.engine) as session, session.begin():
            session.execute(delete(LedgerVerifyJob).where(LedgerVerifyJob.id == job_id))
