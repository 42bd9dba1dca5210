"""Nights of changes to a small controlled world, and what each destination type holds after.

The world: the demo seed, with one program (MO-HS-03) made fully controlled — every consent and
parent statement of its children removed, then one fresh, valid written consent for MO-DESE
for the children put "in play". The agreement is a copy of MO DESE's consent agreement that also
sends the middle name, carries parent statements, and deletes on revocation and when a child
no longer qualifies. So what the agreement permits is known without the code under test: an
in-play child with an active consent, with its current values; nobody else.

Readers turn each destination's content into ``{child key: Holding}``: file drops (local folder,
SFTP) by the program's latest complete folder (every folder is a snapshot), the staging database
by its tables, Ed-Fi by the contract server's students and school associations.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sqlalchemy import Engine, create_engine, delete, select, text, update
from sqlalchemy.orm import Session

import pipelines.submission.deliver as deliver
from pipelines.demo import DEMO_DATE
from pipelines.demo.scenarios import BASE_CATEGORIES, PURPOSE_STATE
from schemas import (
    Child,
    Consent,
    DisclosureEntry,
    Enrollment,
    Guardian,
    ParentStatement,
    Program,
    Recipient,
)
from schemas.codes import Purpose
from tests.pipelines.submission.conftest import PROJECT, World

PROGRAM = "MO-HS-03"
AGREEMENT = "mo-dese-state-copy"
FILES = ["hs_child_identity", "hs_enrollment", "hs_parent_statements", "hs_withdrawals"]


def staging_destination(
    world: World, url: str, monkeypatch: pytest.MonkeyPatch, name: str = "state"
) -> None:
    """A staging-database destination ``name`` of the state-copy world, writing to ``url``."""
    monkeypatch.setenv("TEST_STAGING_URL", url)
    world.destination(
        name,
        type="staging_db",
        recipient="MO-DESE",
        agreements=[AGREEMENT],
        formats=FILES[:3],
        retries=0,
        timeout_seconds=10,
        staging_db={"url_env": "TEST_STAGING_URL"},
    )


ChildKey = tuple[str, str]


def night(n: int) -> dt.date:
    """The run date of night ``n`` (1, 2, 3, ...)."""
    return DEMO_DATE + dt.timedelta(days=n - 1)


def write_agreement(world: World) -> None:
    """MO DESE's consent agreement, also sending the middle name, carrying statements and
    deleting what no longer qualifies."""
    data = yaml.safe_load((PROJECT / "config/agreements/mo-dese-consent.yaml").read_text())
    data |= {
        "id": AGREEMENT,
        "parent_statements": "carry",
        "delete_on_revocation": True,
        "delete_out_of_scope": True,
    }
    data["fields"] = {**data["fields"], "middle_name": "keep"}
    path = world.config / "agreements" / f"{AGREEMENT}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def control(world: World, in_play: int) -> list[ChildKey]:
    """Make ``PROGRAM`` controlled (see the module doc); returns the in-play children."""
    with Session(world.engine) as session, session.begin():
        ids = select(Child.id).join(Program).where(Program.code == PROGRAM)
        session.execute(delete(Consent).where(Consent.child_id.in_(ids)))
        session.execute(delete(ParentStatement).where(ParentStatement.child_id.in_(ids)))
        recipient = session.scalar(select(Recipient.id).where(Recipient.code == "MO-DESE"))
        parents = session.execute(
            select(Child.id, Child.local_id, Guardian.id, Guardian.relationship)
            .join(Guardian, Guardian.child_id == Child.id)
            .join(Enrollment, Enrollment.child_id == Child.id)
            .where(
                Child.id.in_(ids),
                Enrollment.exit_date.is_(None),
                Enrollment.entry_date <= DEMO_DATE,
            )
            .order_by(Child.local_id, Guardian.id)
        ).all()
        chosen: dict[int, tuple[str, int]] = {}
        for child_id, local_id, guardian_id, relationship in parents:
            if str(relationship) != "other_contact" and child_id not in chosen:
                chosen[child_id] = (local_id, guardian_id)
        picked = sorted(chosen.items(), key=lambda item: item[1][0])[:in_play]
        assert len(picked) == in_play, "the demo program has enough enrolled children"
        for child_id, (_, guardian_id) in picked:
            session.add(_consent(child_id, guardian_id, recipient, DEMO_DATE - dt.timedelta(90)))
    return [(PROGRAM, local_id) for _, (local_id, _) in picked]


def _consent(child_id: int, guardian_id: int, recipient: int | None, signed: dt.date) -> Consent:
    return Consent(
        child_id=child_id,
        guardian_id=guardian_id,
        signature_evidence="e-signature ref TEST",
        signed_date=signed,
        recipient_id=recipient,
        purpose=PURPOSE_STATE,
        purpose_code=Purpose.STATE_LONGITUDINAL_DATA_SYSTEM,
        record_categories=[c.value for c in BASE_CATEGORIES],
    )


def _child_id(session: Session, key: ChildKey) -> int:
    return session.scalar(
        select(Child.id).join(Program).where(Program.code == key[0], Child.local_id == key[1])
    )


def set_middle(world: World, key: ChildKey, value: str) -> None:
    """Correct the child's middle name."""
    with Session(world.engine) as session, session.begin():
        session.execute(
            update(Child)
            .where(Child.id == _child_id(session, key))
            .values(middle_name=value or None)
        )


def revoke(world: World, key: ChildKey, on: dt.date) -> None:
    """The parent revokes every consent of the child on ``on``."""
    with Session(world.engine) as session, session.begin():
        session.execute(
            update(Consent)
            .where(Consent.child_id == _child_id(session, key), Consent.revoked_date.is_(None))
            .values(revoked_date=on)
        )


def expire(world: World, key: ChildKey, on: dt.date) -> None:
    """Every active consent of the child expires on ``on`` (its last valid day)."""
    with Session(world.engine) as session, session.begin():
        session.execute(
            update(Consent)
            .where(Consent.child_id == _child_id(session, key), Consent.revoked_date.is_(None))
            .values(expires_date=on)
        )


def reconsent(world: World, key: ChildKey, on: dt.date) -> None:
    """The parent signs a new consent on ``on`` (the revoked one stays revoked)."""
    with Session(world.engine) as session, session.begin():
        child_id = _child_id(session, key)
        template = session.scalars(select(Consent).where(Consent.child_id == child_id)).first()
        assert template is not None
        session.add(_consent(child_id, template.guardian_id, template.recipient_id, on))


def set_entry_date(world: World, key: ChildKey, value: dt.date) -> None:
    """Correct the child's entry date (part of an Ed-Fi school association's natural key)."""
    with Session(world.engine) as session, session.begin():
        session.execute(
            update(Enrollment)
            .where(Enrollment.child_id == _child_id(session, key))
            .values(entry_date=value)
        )


def set_statement(world: World, key: ChildKey, field_name: str | None) -> None:
    """The child's one parent statement, now disputing ``field_name`` (None: withdrawn). Its
    field is part of the statements file's key."""
    with Session(world.engine) as session, session.begin():
        child_id = _child_id(session, key)
        session.execute(delete(ParentStatement).where(ParentStatement.child_id == child_id))
        if field_name is not None:
            session.add(
                ParentStatement(
                    child_id=child_id,
                    field=field_name,
                    statement="The parent disputes this entry.",
                    filed_date=DEMO_DATE - dt.timedelta(10),
                )
            )


def source(world: World) -> pd.DataFrame:
    """The program's children now, by child key."""
    frame = world.children()
    frame = frame.loc[frame["program_code"] == PROGRAM]
    return frame.set_index(["program_code", "local_id"])


# --- what the disclosure log says --------------------------------------------------------------


@dataclass(frozen=True)
class Latest:
    """A child's latest disclosure-log entry."""

    action: str
    digest: str
    fields: tuple[str, ...]


def latest(world: World, run_ids: Iterable[str] | None = None) -> dict[ChildKey, Latest]:
    """Per child of ``PROGRAM``, the latest entry (of ``run_ids`` when given)."""
    with world.engine.connect() as connection:
        query = select(DisclosureEntry).where(DisclosureEntry.program_code == PROGRAM)
        if run_ids is not None:
            query = query.where(DisclosureEntry.run_id.in_(list(run_ids)))
        rows = connection.execute(query.order_by(DisclosureEntry.seq)).all()
    out: dict[ChildKey, Latest] = {}
    for row in rows:
        out[(row.program_code, row.child_local_id)] = Latest(
            row.action, row.payload_digest, tuple(row.fields)
        )
    return out


# --- what a destination holds -----------------------------------------------------------------


@dataclass
class Holding:
    """What a destination holds for one child."""

    middle: str
    digest: str | None = None
    statements: list[str] = field(default_factory=list)
    entry_dates: list[str] = field(default_factory=list)


def _digest(key: ChildKey, frames: dict[str, pd.DataFrame]) -> str:
    """The pipeline's per-child digest, recomputed from the files: each of the child's rows,
    file by file in name order, statements in field order."""
    digest = hashlib.sha256()
    for name in sorted(frames):
        frame = frames[name]
        rows = frame.loc[(frame["ProgramID"] == key[0]) & (frame["LocalChildID"] == key[1])]
        if "Field" in rows.columns:
            rows = rows.sort_values("Field", kind="stable")
        for values in rows.astype(str).values.tolist():
            digest.update(f"{name}\x1e{chr(0x1F).join(values)}\x1d".encode())
    return digest.hexdigest()


def latest_folder(root: Path) -> Path | None:
    """The program's latest complete folder of a file drop."""
    folders = sorted(p.parent for p in root.glob(f"*/{PROGRAM}/manifest.json"))
    return folders[-1] if folders else None


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def held_by_files(root: Path) -> tuple[dict[ChildKey, Holding], set[ChildKey]]:
    """A file drop's latest snapshot of the program, and the children its withdrawals file
    names."""
    folder = latest_folder(root)
    if folder is None:
        return {}, set()
    frames = {p.name: read_csv(p) for p in folder.glob("*.csv") if p.name != "hs_withdrawals.csv"}
    # a folder without an identity file (only withdrawals: the program stopped sharing) is an
    # empty snapshot
    identity = frames.get("hs_child_identity.csv", pd.DataFrame(columns=["ProgramID"]))
    held = {}
    for row in identity.itertuples(index=False):
        key = (row.ProgramID, row.LocalChildID)
        statements = frames.get("hs_parent_statements.csv", pd.DataFrame(columns=["ProgramID"]))
        mine = (
            statements.loc[
                (statements["ProgramID"] == key[0]) & (statements.get("LocalChildID") == key[1])
            ]
            if not statements.empty
            else statements
        )
        held[key] = Holding(
            middle=row.LegalMiddleName,
            digest=_digest(key, frames),
            statements=sorted(mine["Field"]) if not mine.empty else [],
        )
    withdrawals = folder / "hs_withdrawals.csv"
    gone = set()
    if withdrawals.is_file():
        table = read_csv(withdrawals)
        gone = set(zip(table["ProgramID"], table["LocalChildID"], strict=True))
    return held, gone


def held_by_staging(url: str) -> dict[ChildKey, Holding]:
    """The staging database's rows of the program."""
    engine: Engine = create_engine(url)
    try:
        with engine.connect() as connection:
            identity = connection.execute(
                text(
                    'SELECT "ProgramID", "LocalChildID", "LegalMiddleName" FROM hs_child_identity '
                    'WHERE "ProgramID" = :p'
                ),
                {"p": PROGRAM},
            ).all()
            enrolled = connection.execute(
                text(
                    'SELECT "LocalChildID", "EntryDate" FROM hs_enrollment WHERE "ProgramID" = :p'
                ),
                {"p": PROGRAM},
            ).all()
            statements = connection.execute(
                text(
                    'SELECT "LocalChildID", "Field" FROM hs_parent_statements '
                    'WHERE "ProgramID" = :p'
                ),
                {"p": PROGRAM},
            ).all()
    finally:
        engine.dispose()
    held = {(p, c): Holding(middle=m or "") for p, c, m in identity}
    for local_id, entry in enrolled:
        held.setdefault((PROGRAM, local_id), Holding("?")).entry_dates.append(str(entry))
    for local_id, name in statements:
        held.setdefault((PROGRAM, local_id), Holding("?")).statements.append(name)
    return held


def held_by_edfi(server: Any, world: World) -> dict[ChildKey, Holding]:
    """The contract server's students of the program, with their school associations' entry
    dates (students are named ``{program}-{local id}`` or by state student id)."""
    children = source(world)
    by_id: dict[str, ChildKey] = {}
    for key, child in children.iterrows():
        by_id[f"{key[0]}-{key[1]}"] = key
        if isinstance(child.state_student_id, str) and child.state_student_id:
            by_id[child.state_student_id] = key
    held: dict[ChildKey, Holding] = {}
    for student in server.held("students"):
        key = by_id.get(student["studentUniqueId"])
        if key is not None:
            held[key] = Holding(middle=student.get("middleName", ""))
    for association in server.held("studentSchoolAssociations"):
        key = by_id.get(association["studentReference"]["studentUniqueId"])
        if key is not None:
            held.setdefault(key, Holding("?")).entry_dates.append(association["entryDate"])
    return held


class Killed(Exception):
    """The run dies here (a ``kill -9`` stand-in): nothing of it runs after but what the test
    runs itself."""


def kill_before_logging(patch: pytest.MonkeyPatch) -> None:
    """With ``patch``: the run dies (:class:`Killed`) at its first program the destination
    took, before its disclosures are logged."""
    record = deliver.record_delivery

    def killed(session: Any, context: Any, **kwargs: Any) -> Any:
        if kwargs.get("delivery_id") is not None:
            raise Killed
        return record(session, context, **kwargs)

    patch.setattr(deliver, "record_delivery", killed)
