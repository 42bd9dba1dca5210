"""What tonight changes at a destination, decided against what it holds now (pure rules)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest

from pipelines.destinations.base import Artifact, Batch
from pipelines.destinations.registry import DestinationConfig, Resend
from pipelines.submission.state import (
    DELETED,
    DROPPED,
    HELD,
    OUT_OF_SCOPE,
    PROGRAM,
    REVOKED,
    Current,
    Held,
    current_of,
    plan_changes,
)

P = "VT-HS-01"
A, B, C = (P, "C1"), (P, "C2"), (P, "C3")
ENROLL = "hs_enrollment.csv"


def held(*items: tuple[tuple[str, str], str], status: str = HELD) -> dict:
    out = {
        key: Held(digest, {ENROLL: [[key[0], key[1], "2026-08-24"]]}, status)
        for key, digest in items
    }
    out[(P, PROGRAM)] = Held("own", {}, HELD)
    return out


def current(*items: tuple[tuple[str, str], str], entry: str = "2026-08-24") -> Current:
    return Current(
        {key: digest for key, digest in items},
        {key: {ENROLL: [[key[0], key[1], entry]]} for key, _ in items},
        "own",
    )


CASES = [
    # (id, held, current, withheld tonight, options, send, withdraw, replace)
    (
        "when_nothing_differs_then_nothing",
        held((A, "a")),
        current((A, "a")),
        {},
        {},
        set(),
        {},
        set(),
    ),
    (
        "when_a_value_reverts_to_an_earlier_one_then_sent",
        held((A, "b")),
        current((A, "a")),
        {},
        {},
        {A},
        {},
        set(),
    ),
    (
        "when_new_child_then_sent",
        held((A, "a")),
        current((A, "a"), (B, "b")),
        {},
        {},
        {B},
        {},
        set(),
    ),
    (
        "when_full_then_everything_sent",
        held((A, "a")),
        current((A, "a")),
        {},
        {"full": True},
        {A},
        {},
        set(),
    ),
    (
        "when_revoked_and_agreement_deletes_then_withdrawn",
        held((A, "a"), (B, "b")),
        current((A, "a")),
        {B: REVOKED},
        {"delete_on_revocation": True},
        set(),
        {B: REVOKED},
        set(),
    ),
    (
        "when_revoked_and_agreement_keeps_then_left",
        held((A, "a"), (B, "b")),
        current((A, "a")),
        {B: REVOKED},
        {"delete_out_of_scope": True},
        set(),
        {},
        set(),
    ),
    (
        "when_no_longer_qualifies_and_agreement_deletes_then_withdrawn",
        held((A, "a"), (B, "b")),
        current((A, "a")),
        {B: "no_consent"},
        {"delete_out_of_scope": True},
        set(),
        {B: OUT_OF_SCOPE},
        set(),
    ),
    (
        "when_no_longer_qualifies_and_agreement_silent_then_left",
        held((A, "a"), (B, "b")),
        current((A, "a")),
        {B: "no_consent"},
        {"delete_on_revocation": True},
        set(),
        {},
        set(),
    ),
    (
        "when_withheld_for_a_data_problem_then_left",
        held((A, "a"), (B, "b")),
        current((A, "a")),
        {B: "required_field_missing"},
        {"delete_on_revocation": True, "delete_out_of_scope": True},
        set(),
        {},
        set(),
    ),
    (
        "when_missing_without_a_reason_then_left",
        held((A, "a"), (B, "b")),
        current((A, "a")),
        {},
        {"delete_on_revocation": True, "delete_out_of_scope": True},
        set(),
        {},
        set(),
    ),
    (
        "when_already_deleted_then_not_withdrawn_again",
        {**held((A, "a")), B: Held("", {}, DELETED)},
        current((A, "a")),
        {B: REVOKED},
        {"delete_on_revocation": True},
        set(),
        {},
        set(),
    ),
    (
        "when_left_out_of_a_snapshot_then_revoked_then_withdrawn",
        {**held((A, "a")), B: Held("b", {}, DROPPED)},
        current((A, "a")),
        {B: REVOKED},
        {"delete_on_revocation": True},
        set(),
        {B: REVOKED},
        set(),
    ),
    (
        "when_left_out_of_a_snapshot_and_back_unchanged_then_sent",
        {**held((A, "a")), B: Held("b", {}, DROPPED)},
        current((A, "a"), (B, "b")),
        {},
        {},
        {B},
        {},
        set(),
    ),
    (
        "when_deleted_child_returns_unchanged_then_sent",
        {**held((A, "a")), B: Held("", {}, DELETED)},
        current((A, "a"), (B, "b")),
        {},
        {},
        {B},
        {},
        set(),
    ),
    (
        "when_a_row_key_changes_then_old_row_replaced",
        held((A, "a")),
        current((A, "a2"), entry="2026-09-08"),
        {},
        {},
        {A},
        {},
        {A},
    ),
]


@pytest.mark.parametrize(
    ("held_now", "tonight", "withheld", "options", "send", "withdraw", "replace"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_plan_changes(held_now, tonight, withheld, options, send, withdraw, replace) -> None:  # type: ignore[no-untyped-def]
    changes = plan_changes(held_now, tonight, withheld, program=P, **options)
    assert changes.send == send
    assert changes.withdraw == withdraw
    assert set(changes.replace) == replace
    assert changes.nothing == (not send and not withdraw and not replace)


def test_when_a_row_key_changes_then_only_the_old_key_is_replaced() -> None:
    changes = plan_changes(held((A, "a")), current((A, "a2"), entry="2026-09-08"), {}, program=P)
    assert changes.replace == {A: {ENROLL: [[P, "C1", "2026-08-24"]]}}


@pytest.mark.parametrize(
    ("tonight", "withheld", "sends_snapshot"),
    [
        pytest.param(current((A, "a"), (B, "b")), {}, False, id="when_unchanged_then_no_snapshot"),
        pytest.param(current((A, "a"), (B, "b2")), {}, True, id="when_one_child_changed_then_all"),
        pytest.param(current((A, "a")), {}, True, id="when_a_child_is_gone_then_all"),
    ],
)
def test_a_file_drop_gets_its_whole_snapshot_when_anything_differs(
    tonight: Current, withheld: dict, sends_snapshot: bool
) -> None:
    changes = plan_changes(held((A, "a"), (B, "b")), tonight, withheld, program=P, snapshot=True)
    assert changes.send == (set(tonight.digests) if sends_snapshot else set())
    assert not changes.replace, "a snapshot replaces rows by itself"


def test_when_program_artifacts_change_then_they_go_alone() -> None:
    tonight = Current({A: "a"}, {A: {}}, "other")
    changes = plan_changes(held((A, "a")), tonight, {}, program=P)
    assert changes.program and not changes.send and not changes.nothing


def test_current_reads_row_keys_per_child_and_digests_program_artifacts() -> None:
    frame = pd.DataFrame({"ProgramID": [P, P], "LocalChildID": ["C1", "C2"], "X": ["1", "2"]})
    counts = pd.DataFrame({"ProgramID": [P], "ChildCount": ["12"]})
    batch = Batch(
        "run",
        "2026-11-27",
        P,
        (
            Artifact(ENROLL, frame, ("ProgramID", "LocalChildID"), (A, B)),
            Artifact("agg.csv", counts),
        ),
    )
    ledger = {"disclosures": [{"program_code": P, "child_local_id": "C1", "digest": "d1"}]}
    now = current_of(batch, ledger)
    assert now.digests == {A: "d1"}
    assert now.rows[A] == {ENROLL: [[P, "C1"]]} and now.rows[B] == {ENROLL: [[P, "C2"]]}
    only = batch.only({B}, program_artifacts=False)
    assert [a.name for a in only.artifacts] == [ENROLL] and only.child_keys == {B}
    assert list(only.artifacts[0].frame["LocalChildID"]) == ["C2"]
    assert [a.name for a in batch.only(set()).artifacts] == ["agg.csv"]


@pytest.mark.parametrize(("value", "ok"), [("changes", True), ("full", True), ("sometimes", False)])
def test_resend_option_is_validated(value: str, ok: bool) -> None:
    data = {
        "name": "x",
        "type": "local",
        "recipient": "VT-AOE",
        "agreements": ["vt-aoe-ecids"],
        "formats": ["hs_child_identity"],
        "local": {"root": "out"},
        "resend": value,
    }
    if ok:
        assert DestinationConfig.model_validate(data).resend is Resend(value)
    else:
        with pytest.raises(ValueError, match="resend"):
            DestinationConfig.model_validate(data)


def test_resend_defaults_to_changes() -> None:
    config = DestinationConfig.model_validate(
        {
            "name": "x",
            "type": "local",
            "recipient": "VT-AOE",
            "agreements": ["vt-aoe-ecids"],
            "formats": ["hs_child_identity"],
            "local": {"root": "out"},
        }
    )
    assert config.resend is Resend.CHANGES


def save(session: Any, **night: Any) -> None:
    """Record what the destination holds after a night, as the record step does."""
    from pipelines.submission.state import state_changes, write_state

    write_state(session, state_changes(**night), dt.datetime.now(dt.UTC))


def test_state_written_is_what_changed_and_reads_back(engine) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from pipelines.submission.state import differing, load_held, with_rows
    from schemas import DeliveredRecord

    night1 = current((A, "a"), (B, "b"), (C, "c"))
    with Session(engine) as session, session.begin():
        save(
            session,
            destination="d",
            program=P,
            run_id="r1",
            current=night1,
            held={},
            sent={A, B, C},
            program_sent=True,
        )
    night2 = current((A, "a"), (B, "b2"))
    with Session(engine) as session, session.begin():
        before = load_held(session, "d", P)
        assert {k: h.digest for k, h in before.items() if k[1]} == {A: "a", B: "b", C: "c"}
        assert all(h.rows == {} for h in before.values()), "row keys only on demand"
        needed = differing(before, night2)
        assert needed == {B, C}
        loaded = with_rows(session, "d", before, needed)
        assert loaded[B].rows == {ENROLL: [[P, "C2", "2026-08-24"]]} and loaded[A].rows == {}
        save(
            session,
            destination="d",
            program=P,
            run_id="r2",
            current=night2,
            held=before,
            sent={A, B},
            program_sent=False,
            withdrawn=set(),
            snapshot=True,
        )
    with Session(engine) as session:
        rows = {
            r.child_local_id: (r.digest, r.status, r.run_id)
            for r in session.scalars(select(DeliveredRecord))
        }
    assert rows == {
        "": ("own", HELD, "r1"),
        "C1": ("a", HELD, "r1"),  # unchanged: not rewritten
        "C2": ("b2", HELD, "r2"),
        "C3": ("c", DROPPED, "r2"),  # not in the latest snapshot
    }


def test_a_child_withdrawn_from_a_file_drop_is_deleted_not_dropped(engine) -> None:  # type: ignore[no-untyped-def]
    """A withdrawn child is not in the latest snapshot either: it must be recorded deleted (a
    dropped child would be withdrawn again, and the snapshot resent, every night)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from pipelines.submission.state import DELETED, load_held
    from schemas import DeliveredRecord

    with Session(engine) as session, session.begin():
        save(
            session,
            destination="d",
            program=P,
            run_id="r1",
            current=current((A, "a"), (B, "b")),
            held={},
            sent={A, B},
            program_sent=True,
        )
    with Session(engine) as session, session.begin():
        before = load_held(session, "d", P)
        save(
            session,
            destination="d",
            program=P,
            run_id="r2",
            current=current((A, "a")),
            held=before,
            sent={A},
            program_sent=False,
            withdrawn={B},
            snapshot=True,
        )
    with Session(engine) as session:
        status = {r.child_local_id: r.status for r in session.scalars(select(DeliveredRecord))}
    assert status == {"": HELD, "C1": HELD, "C2": DELETED}
