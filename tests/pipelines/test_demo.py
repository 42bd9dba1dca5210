"""The demo seed on SQLite and PostgreSQL: deterministic, plausible, every scenario present,
the AIAN registry as the contract says, replace-on-reseed, and the CLI."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.db import make_engine
from pipelines.demo import DEMO_DATE, PROGRAM_CODES, ConsentScenario, seed, summarize
from pipelines.demo.draw import completed_years, quotas
from pipelines.demo.seed import TABLES
from schemas import (
    Attendance,
    Base,
    Child,
    Consent,
    Enrollment,
    EnrollmentNotice,
    Guardian,
    ParentStatement,
    ParticipationEvent,
    Program,
    Recipient,
    Site,
)

SMALL = 240


def dump(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every table the seed writes, rows in id order; datetimes as naive UTC."""

    def plain(value: object) -> object:
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    with engine.connect() as conn:
        return {
            t.name: [
                tuple(plain(v) for v in row) for row in conn.execute(select(t).order_by(t.c.id))
            ]
            for t in (*TABLES, Recipient.__table__)
        }


def scratch_sqlite(tmp_path, name: str) -> Engine:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / name}")
    Base.metadata.create_all(engine)
    return engine


def ages(engine: Engine) -> dict[int, tuple[str, int]]:
    """child id -> (program code, completed years on DEMO_DATE), computed with datetime."""
    with engine.connect() as conn:
        rows = conn.execute(select(Child.id, Program.code, Child.birth_date).join(Program)).all()
    return {
        i: (code, DEMO_DATE.year - b.year - ((DEMO_DATE.month, DEMO_DATE.day) < (b.month, b.day)))
        for i, code, b in rows
    }


def test_same_seed_gives_identical_rows_on_another_database(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = scratch_sqlite(tmp_path, "other.db")
    assert seed(engine, SMALL, 7) == seed(other, SMALL, 7)
    first, second = dump(engine), dump(other)
    other.dispose()
    assert len(first["children"]) == SMALL
    assert first == second


def test_different_seeds_give_different_children_in_the_same_world(
    engine: Engine, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    other = scratch_sqlite(tmp_path, "other.db")
    seed(engine, SMALL, 7)
    seed(other, SMALL, 8)
    first, second = dump(engine), dump(other)
    other.dispose()
    for fixed in ("programs", "sites", "participation_events", "recipients"):
        assert first[fixed] == second[fixed], fixed
    for drawn in ("children", "guardians", "enrollments", "consents"):
        assert first[drawn] != second[drawn], drawn


RATES = [  # flag, expected share, tolerance (3000 children)
    ("disability", 0.13, 0.025),
    ("dual_language_learner", 0.30, 0.04),
    ("homeless", 0.05, 0.015),
    ("foster_care", 0.03, 0.012),
    ("state_student_id", 0.70, 0.03),
]


def test_rates_and_ages_are_plausible_on_3000_children(engine: Engine) -> None:
    written = seed(engine, 3000, 42)
    summary = summarize(engine)
    assert summary == written, "the database does not read back as the seed said"
    off = {f: summary.rate(f) for f, want, tol in RATES if abs(summary.rate(f) - want) > tol}
    assert not off
    assert summary.flags["iep"] + summary.flags["ifsp"] == summary.flags["disability"]
    assert 0.01 <= summary.statements / summary.children <= 0.03

    age = ages(engine)
    band = {"VT-EHS-02": (0, 2), "VT-HS-01": (3, 5), "MO-HS-03": (3, 5), "NM-HS-05": (3, 5)}
    for code, years in age.values():
        low, high = band.get(code, (0, 5))
        assert low <= years <= high, code
    with engine.connect() as conn:
        flags = conn.execute(select(Child.id, Child.iep, Child.ifsp, Child.home_language)).all()
        zips = conn.execute(select(Program.state, Child.address_zip).join(Program)).all()
        site_zips = conn.execute(select(Program.state, Site.zip).join(Program)).all()
        relations = Counter(conn.execute(select(Guardian.relationship)).scalars())
        per_child = Counter(conn.execute(select(Guardian.child_id)).scalars())
        foster = set(conn.execute(select(Child.id).where(Child.foster_care)).scalars())
        foster_parented = set(
            conn.execute(
                select(Guardian.child_id).where(Guardian.relationship == "foster_parent")
            ).scalars()
        )
    assert all(not iep or age[i][1] >= 3 for i, iep, _, _ in flags)
    assert all(not ifsp or age[i][1] < 3 for i, _, ifsp, _ in flags)
    languages = Counter(lang for *_, lang in flags if lang != "eng")
    assert languages.most_common(1)[0][0] == "spa"
    assert languages["spa"] > 0.5 * sum(languages.values()) and len(languages) >= 5
    prefixes = {"VT": ("05",), "MO": ("63", "64", "65"), "NM": ("87", "88")}
    assert all(z.startswith(prefixes[s]) for s, z in [*zips, *site_zips])
    assert set(per_child.values()) == {1, 2} and len(per_child) == 3000
    assert foster <= foster_parented
    for relation in ("mother", "father", "grandparent_caregiver", "foster_parent", "other_contact"):
        assert relations[relation] > 0, relation


def test_every_consent_and_notice_scenario_is_present_and_coherent(engine: Engine) -> None:
    written = seed(engine, 300, 42)
    assert written == summarize(engine)
    assert all(n > 0 for n in written.consent_scenarios.values()), written.consent_scenarios
    assert set(written.consent_scenarios) == {s.value for s in ConsentScenario}
    assert all(n > 0 for n in written.notice_scenarios.values()), written.notice_scenarios
    assert sum(written.consent_scenarios.values()) == written.children

    age = ages(engine)
    with engine.connect() as conn:
        consents = conn.execute(
            select(Consent.child_id, Consent.signed_date, Consent.revoked_date,
                   Consent.expires_date, Guardian.relationship, Guardian.child_id)
            .join(Guardian, Guardian.id == Consent.guardian_id)
        ).all()  # fmt: skip
        notices = conn.execute(select(EnrollmentNotice.child_id, EnrollmentNotice.notified_date,
                                      EnrollmentNotice.refused_date, Recipient.code)
                               .join(Recipient)).all()  # fmt: skip
        entries = conn.execute(select(Child.birth_date, Enrollment.entry_date,
                                      Enrollment.exit_date).join(Child)).all()  # fmt: skip
        months = conn.execute(select(Attendance.days_scheduled, Attendance.days_present)).all()
        filed = conn.execute(select(ParentStatement.filed_date, ParentStatement.field)).all()
    siblings = sum(guardian_child != child for child, *_, guardian_child in consents)
    assert siblings == written.consent_scenarios["sibling_guardian"] > 0
    for _, signed, revoked, expires, _, _ in consents:
        assert signed is None or revoked is None or signed < revoked
        assert signed is None or expires is None or signed < expires
    other_contact_signed = sum(c[4] == "other_contact" for c in consents)
    assert other_contact_signed == written.consent_scenarios["non_parent"]
    for child, notified, refused, district in notices:
        code, years = age[child]
        assert years >= 4 and district == {"VT": "VT-BSD", "MO": "MO-KCPS"}[code[:2]]
        assert notified < DEMO_DATE and (refused is None or notified < refused < DEMO_DATE)
    recent = sum(DEMO_DATE - n < dt.timedelta(days=10) for _, n, r, _ in notices if r is None)
    assert recent == written.notice_scenarios["notified_recently"]
    assert all(b < entry <= DEMO_DATE and (out is None or entry < out) for b, entry, out in entries)
    assert all(0 <= present <= scheduled and scheduled > 0 for scheduled, present in months)
    assert all(d < DEMO_DATE and field in {"race", "disability", "birth_date", "home_language",
                                             "address_zip"}
               for d, field in filed)  # fmt: skip


EXPECTED_EVENTS = {
    ("VT-HS-01", "VT-AOE", "participate"), ("VT-HS-01", "VT-BSD", "participate"),
    ("VT-HS-01", "UVM-CRC", "participate"), ("VT-EHS-02", "VT-AOE", "participate"),
    ("MO-HS-03", "MO-DESE", "participate"), ("MO-HS-03", "MO-KCPS", "participate"),
    ("NM-HS-05", "NM-ECECD", "participate"), ("NM-AIAN-06", "NM-ECECD", "participate"),
    ("NM-AIAN-07", "NM-ECECD", "participate"), ("NM-AIAN-07", None, "opt_in"),
    ("NM-AIAN-06", None, "opt_in"),
}  # fmt: skip


def test_aian_programs_and_the_participation_registry_follow_the_contract(engine: Engine) -> None:
    seed(engine, 50, 1)
    with Session(engine) as conn:
        programs = conn.execute(select(Program.code, Program.is_aian, Program.program_type)).all()
        events = conn.execute(
            select(Program.code, Recipient.code, ParticipationEvent)
            .join(Program, Program.id == ParticipationEvent.program_id)
            .outerjoin(Recipient, Recipient.id == ParticipationEvent.recipient_id)
        ).all()
        recipients = conn.execute(select(Recipient.code, Recipient.category, Recipient.state)).all()
    assert [c for c, *_ in sorted(programs, key=lambda p: p[0])] == sorted(PROGRAM_CODES)
    assert {c for c, aian, _ in programs if aian} == {"NM-AIAN-06", "NM-AIAN-07"}
    assert all((t == "aian") == aian for _, aian, t in programs)
    assert {(p, r, e.action.value) for p, r, e in events} == EXPECTED_EVENTS
    assert all(e.decided_by == "demo seed" for *_, e in events)
    (opt_in,) = [e for p, _, e in events if e.action.value == "opt_in" and p == "NM-AIAN-07"]
    assert opt_in.authority == "Tribal Council Resolution 2026-14"
    assert opt_in.recorded_by == "demo seed"
    (imported,) = [e for p, _, e in events if e.action.value == "opt_in" and p == "NM-AIAN-06"]
    assert imported.authority is None and imported.recorded_by is None  # leak class 3
    assert (opt_in.scope.value, opt_in.excluded_fields) == ("aggregate", ["race"])
    assert opt_in.recipient_id is None
    assert not [p for p, r, _ in events if p == "MO-MSHS-04"], "MO-MSHS-04 must be unregistered"
    seds = {code: state for code, category, state in recipients
            if category.value == "state_education_data_system"}  # fmt: skip
    assert seds == {"VT-AOE": "VT", "MO-DESE": "MO", "NM-ECECD": "NM"}
    assert len(recipients) == 8


def test_reseeding_replaces_the_demo_rows_and_keeps_everything_else(engine: Engine) -> None:
    first = seed(engine, 120, 5)
    original = dump(engine)
    seed(engine, 80, 6)
    assert summarize(engine).children == 80
    assert seed(engine, 120, 5) == first
    assert dump(engine) == original, "a reseed of an all-demo database must give the same rows"

    with engine.begin() as conn:  # someone's own program, consenting to a demo recipient
        aoe = conn.execute(select(Recipient.id).where(Recipient.code == "VT-AOE")).scalar_one()
        conn.execute(insert(Program).values(id=900, code="OWN-01", grant_number="x", name="own",
                                            state="VT", program_type="head_start"))  # fmt: skip
        conn.execute(insert(Child).values(id=90_000, program_id=900, local_id="K1",
                                          first_name="A", last_name="B",
                                          birth_date=dt.date(2022, 1, 1), sex="female",
                                          race="unknown", ethnicity="unknown"))  # fmt: skip
        conn.execute(
            insert(Consent).values(
                id=90_000,
                child_id=90_000,
                recipient_id=aoe,
                purpose="p",
                record_categories=["identity"],
            )
        )
    again = seed(engine, 120, 5)
    assert again == first == summarize(engine)
    with engine.connect() as conn:
        kept = conn.execute(select(Consent.recipient_id).where(Consent.id == 90_000)).scalar_one()
        assert kept == aoe
        assert conn.execute(select(Child.local_id).where(Child.program_id == 900)).scalar() == "K1"
        new_ids = conn.execute(select(Child.id).where(Child.program_id != 900)).scalars().all()
    assert len(new_ids) == 120 and 90_000 not in new_ids


def test_negative_children_are_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="children"):
        seed(engine, -1, 1)


def test_cli_seed_upgrades_replaces_and_prints_counts_without_names(db_url: str) -> None:
    engine = make_engine(db_url)
    Base.metadata.drop_all(engine)  # the CLI creates the schema itself, with Alembic
    runner = CliRunner()
    args = ["demo", "seed", "--children", "60", "--seed", "3", "--database-url", db_url]
    for _ in range(2):
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
    summary = summarize(engine)
    assert summary.children == 60 and summary.programs[0].code == "VT-HS-01"
    shown = runner.invoke(app, ["demo", "summary", "--database-url", db_url],
                          env={"COLUMNS": "200"})  # fmt: skip
    assert shown.exit_code == 0, shown.output
    with engine.connect() as conn:
        names = set(conn.execute(select(Child.first_name)).scalars()) | set(
            conn.execute(select(Child.last_name)).scalars()
        )
    engine.dispose()
    for output in (result.output, shown.output):
        assert "NM-AIAN-07" in output and "non_parent" in output and "60" in output
        assert not [n for n in names if re.search(rf"\b{re.escape(n)}\b", output)]


@given(st.integers(0, 5_000), st.lists(st.floats(0.01, 100), min_size=1, max_size=12))
def test_quotas_are_exact_and_near_the_shares(n: int, weights: list[float]) -> None:
    counts = quotas(n, weights, at_least_one=True)
    assert counts.sum() == n
    share = np.asarray(weights) / sum(weights)
    if n >= len(weights):
        assert (counts >= 1).all()
        assert (np.abs(counts - 1 - share * (n - len(weights))) < 1 + 1e-9).all()


@given(st.dates(dt.date(2018, 1, 1), dt.date(2026, 11, 27)))
def test_completed_years_match_calendar_arithmetic(birth: dt.date) -> None:
    want = (
        DEMO_DATE.year - birth.year - ((DEMO_DATE.month, DEMO_DATE.day) < (birth.month, birth.day))
    )
    assert completed_years(np.array([birth], dtype="M8[D]"), DEMO_DATE)[0] == want
