"""The extract hands the decision each consent's signer as recorded (the signer's own child,
relationship and relationship dates) and the purpose code, on SQLite and PostgreSQL; the
decision over that extract withholds a consent signed by a sibling's guardian."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pipelines.extract import extract
from privacy.decision import DecisionInputs, RecipientInfo, decide
from privacy.participation import ParticipationState, ProgramStatus
from schemas import Child, Consent, Enrollment, Guardian, Program, Recipient, Site
from tests.privacy.builders import agreement

RUN = dt.date(2026, 11, 27)
SIGNED = dt.date(2026, 9, 1)
SLDS = "state_longitudinal_data_system"
CATEGORIES = ["identity", "demographics", "enrollment"]


def _world(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        program = Program(code="VT-HS-01", grant_number="01CH900001", name="Test Head Start",
                           state="VT", program_type="head_start")  # fmt: skip
        session.add(program)
        session.flush()
        site = Site(program_id=program.id, code="S01", name="Center")
        recipient = Recipient(code="VT-AOE", name="AOE", category="state_education_data_system",
                              entity_level="state", state="VT")  # fmt: skip
        session.add_all([site, recipient])
        session.flush()
        kids = {}
        for local in ("K1", "K2", "K3"):
            kid = Child(program_id=program.id, local_id=local, first_name="A", last_name="B",
                        birth_date=dt.date(2022, 3, 1), sex="female", race="white",
                        ethnicity="not_hispanic", tribal_affiliation=None)  # fmt: skip
            session.add(kid)
            session.flush()
            session.add(Enrollment(child_id=kid.id, site_id=site.id, program_option="center_based",
                                   entry_date=dt.date(2026, 8, 24),
                                   eligibility_category="income"))  # fmt: skip
            kids[local] = kid.id
        # K1 and K2 are siblings: each has a guardian row of their own
        sibling_father = Guardian(child_id=kids["K2"], first_name="F", last_name="B",
                                  relationship="father")  # fmt: skip
        contact = Guardian(child_id=kids["K1"], first_name="N", last_name="C",
                           relationship="other_contact")  # fmt: skip
        late_mother = Guardian(child_id=kids["K3"], first_name="M", last_name="B",
                               relationship="foster_parent",
                               relationship_start=SIGNED + dt.timedelta(days=1),
                               relationship_end=dt.date(2027, 6, 30))  # fmt: skip
        session.add_all([sibling_father, contact, late_mother])
        session.flush()

        def consent(child: str, guardian: Guardian | None, purpose: str | None) -> Consent:
            return Consent(child_id=kids[child], guardian_id=guardian.id if guardian else None,
                           signature_evidence="paper form", signed_date=SIGNED,
                           recipient_id=recipient.id, purpose="state data system",
                           purpose_code=purpose, record_categories=CATEGORIES)  # fmt: skip

        session.add_all([
            consent("K1", sibling_father, SLDS),  # a sibling's guardian signed for K1
            consent("K1", contact, SLDS),
            consent("K1", None, SLDS),
            consent("K2", sibling_father, SLDS),  # K2's own father
            consent("K2", sibling_father, "idea_evaluation_referral"),
            consent("K3", late_mother, SLDS),  # foster placement began the day after signing
        ])  # fmt: skip
        session.commit()
        return {**kids, "father": sibling_father.id, "contact": contact.id}


def _chunk(engine: Engine) -> DecisionInputs:
    (chunk,) = list(extract(engine, ["VT-HS-01"], RUN))
    return DecisionInputs(chunk.children, chunk.consents, chunk.notices, chunk.statements)


def test_extract_gives_each_consents_signer_as_recorded(engine: Engine) -> None:
    ids = _world(engine)
    consents = _chunk(engine).consents.sort_values(["child_id", "purpose_code"], kind="stable")
    rows = [
        (
            int(row.child_id),
            None if pd.isna(row.signer_child_id) else int(row.signer_child_id),
            None if pd.isna(row.signer_relationship) else row.signer_relationship,
            row.purpose_code,
        )
        for row in consents.itertuples()
    ]
    k1, k2, k3 = ids["K1"], ids["K2"], ids["K3"]
    assert sorted(rows, key=str) == sorted(
        [
            (k1, k2, "father", SLDS),
            (k1, k1, "other_contact", SLDS),
            (k1, None, None, SLDS),
            (k2, k2, "father", SLDS),
            (k2, k2, "father", "idea_evaluation_referral"),
            (k3, k3, "foster_parent", SLDS),
        ],
        key=str,
    )
    k3_row = consents[consents["child_id"] == k3].iloc[0]
    assert str(k3_row["signer_since"])[:10] == "2026-09-02"
    assert str(k3_row["signer_until"])[:10] == "2027-06-30"
    assert "tribal_affiliation" in _chunk(engine).children.columns


def test_decision_over_the_extract_withholds_a_siblings_guardians_consent(engine: Engine) -> None:
    ids = _world(engine)
    recipient = RecipientInfo("VT-AOE", "state_education_data_system", "state", "VT")
    registry = {
        "VT-HS-01": ProgramStatus("VT-HS-01", False, ParticipationState.PARTICIPATING, RUN, "t")
    }
    decision = decide(_chunk(engine), agreement(), recipient, RUN, participation=registry)
    reasons = decision.children.set_index("child_id")["reason"].astype(str).to_dict()
    assert reasons == {
        ids["K1"]: "consent_not_by_parent",
        ids["K2"]: "disclosed",
        ids["K3"]: "consent_not_by_parent",
    }
