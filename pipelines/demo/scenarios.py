"""Consents, enrollment notices and parent statements: every case the disclosure rules know.

Each consent has exactly one defect (or none), so its scenario can be read back from the
database (see ``summary.py``). Dates sit around ``DEMO_DATE``.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from pipelines.demo import draw
from pipelines.demo.draw import DAY, Columns
from pipelines.demo.names import STATEMENT_TEXT
from pipelines.demo.population import Children
from pipelines.demo.world import DEMO_DATE, OTHER_RECIPIENT, PROGRAMS, SCHOOL_DISTRICT, STATE_SYSTEM
from schemas.codes import Purpose, RecipientCategory, RecordCategory


class ConsentScenario(StrEnum):
    """What a child's consent looks like on ``DEMO_DATE``."""

    VALID = "valid"  # own state's system; identity .. services
    VALID_WITH_DISABILITY = "valid_with_disability"
    VALID_BY_CLASS = "valid_by_class"  # any state education data system
    SIGNED_UNDATED = "signed_undated"
    UNSIGNED = "unsigned"
    REVOKED_BEFORE = "revoked_before"
    REVOKED_AFTER = "revoked_after"
    OTHER_RECIPIENT = "other_recipient"
    IDENTITY_ONLY = "identity_only"
    EXPIRED = "expired"
    NON_PARENT = "non_parent"  # signed by an other_contact guardian
    SIBLING_GUARDIAN = "sibling_guardian"  # signed by another child's parent (a data-entry slip)
    BEFORE_GUARDIANSHIP = "before_guardianship"  # signed before the signer became guardian
    OTHER_PURPOSE = "other_purpose"  # for an IDEA evaluation referral, naming disability
    SPLIT_VALID = "split_valid"  # two valid consents that only together cover the categories
    NONE = "none"


class NoticeScenario(StrEnum):
    """An enrollment notice to the school district (children aged four and up)."""

    LONG_BEFORE = "notified_long_before"
    RECENT = "notified_recently"  # fewer than 10 days before DEMO_DATE
    REFUSED = "refused"
    NONE = "none"


S = ConsentScenario
CONSENT_WEIGHTS = {
    S.VALID: 47,
    S.VALID_WITH_DISABILITY: 10,
    S.VALID_BY_CLASS: 5,
    S.SIGNED_UNDATED: 3,
    S.UNSIGNED: 3,
    S.REVOKED_BEFORE: 3,
    S.REVOKED_AFTER: 3,
    S.OTHER_RECIPIENT: 3,
    S.IDENTITY_ONLY: 3,
    S.EXPIRED: 3,
    S.NON_PARENT: 2,
    S.SIBLING_GUARDIAN: 2,
    S.BEFORE_GUARDIANSHIP: 2,
    S.OTHER_PURPOSE: 2,
    S.SPLIT_VALID: 2,
    S.NONE: 7,
}
CONSENT_SCENARIOS = tuple(CONSENT_WEIGHTS)
NOTICE_WEIGHTS = {
    NoticeScenario.NONE: 20,
    NoticeScenario.LONG_BEFORE: 55,
    NoticeScenario.RECENT: 15,
    NoticeScenario.REFUSED: 10,
}
NOTICE_SCENARIOS = tuple(NOTICE_WEIGHTS)
STATEMENT_SHARE = 0.02
STATEMENT_FIELDS = tuple(STATEMENT_TEXT)

_C = RecordCategory
BASE_CATEGORIES = [_C.IDENTITY, _C.DEMOGRAPHICS, _C.ENROLLMENT, _C.ATTENDANCE, _C.SERVICES]
PURPOSE_STATE = (
    "Link the child's early childhood records with the state education data system for "
    "kindergarten transition and program evaluation (45 CFR 1302.53(b)(3))."
)
PURPOSE_REFERRAL = (
    "Refer the child to the school district for an evaluation for special education services "
    "(IDEA Part B)."
)
SPLIT_FIRST = [_C.IDENTITY, _C.DEMOGRAPHICS]
"""The split scenario's first consent; the second names the rest of the base categories."""
PURPOSE_CODE_OTHER = {
    "VT-HEALTH": Purpose.SERVICE_COORDINATION,
    "MO-KCPS": Purpose.SCHOOL_ENROLLMENT,
    "HHS-OHS": Purpose.AUDIT_EVALUATION,
}
PURPOSE_OTHER = {
    "VT-HEALTH": "Coordinate health and developmental screenings.",
    "MO-KCPS": "Share enrollment records with the school district before kindergarten.",
    "HHS-OHS": "Federal monitoring review.",
}


def consent_scenarios(rng: np.random.Generator, n: int) -> np.ndarray:
    """One scenario index (into ``CONSENT_SCENARIOS``) per child, exact shares, all present."""
    return draw.shuffled_labels(rng, n, list(CONSENT_WEIGHTS.values()))


def another_child(kids: Children) -> np.ndarray:
    """For each child, the index of another child of the same program (the next one, cycling);
    the child itself only when it is its program's only child."""
    other = np.arange(len(kids.ids))
    for program in np.unique(kids.program):
        members = np.flatnonzero(kids.program == program)
        other[members] = np.roll(members, -1)
    return other


def consents(
    rng: np.random.Generator,
    kids: Children,
    scenario: np.ndarray,
    entry: np.ndarray,
    signers: tuple[np.ndarray, np.ndarray],
    recipients: dict[str, int],
    first_id: int,
) -> tuple[Columns, tuple[np.ndarray, np.ndarray]]:
    """The ``consents`` table: one consent per child whose scenario is not ``none``, two for
    ``split_valid``; ``signers`` is (primary guardian id, non-parent contact id) per child.

    Also (guardian ids, relationship start dates) for ``before_guardianship``: those signers
    became the child's guardian after they signed."""
    demo = draw.day(DEMO_DATE)
    who = np.flatnonzero(scenario != CONSENT_SCENARIOS.index(S.NONE))
    sc = np.array(CONSENT_SCENARIOS, dtype=object)[scenario[who]]
    k = len(who)
    birth = kids.birth[who]
    state = np.array([p.state for p in PROGRAMS], dtype=object)[kids.program[who]]

    signed = np.clip(entry[who] + draw.offsets(rng, k, 0, 21), birth + DAY, demo - 2 * DAY)
    expired = sc == S.EXPIRED
    long_ago = np.maximum(birth + DAY, demo - draw.offsets(rng, k, 380, 700))
    signed = np.where(expired, long_ago, signed)
    expires = np.where(
        rng.random(k) < 0.4, np.datetime64("NaT", "D"), demo + draw.offsets(rng, k, 30, 400)
    )
    expires = np.where(expired, np.minimum(signed + 365 * DAY, demo - DAY), expires)
    revoked = np.select(
        [sc == S.REVOKED_BEFORE, sc == S.REVOKED_AFTER],
        [
            draw.between(rng, signed + DAY, np.full(k, demo - DAY)),
            demo + draw.offsets(rng, k, 1, 30),
        ],
        np.datetime64("NaT", "D"),
    )

    paper = rng.random(k) < 0.4
    evidence = np.where(
        paper,
        "signed paper form on file",
        np.array([f"e-signature ref ES-{i:08d}" for i in (first_id + np.arange(k)).tolist()]),
    ).astype(object)
    own = np.array([recipients[STATE_SYSTEM[s]] for s in state.tolist()], dtype=object)
    other = np.array([recipients[OTHER_RECIPIENT[s]] for s in state.tolist()], dtype=object)
    by_class = sc == S.VALID_BY_CLASS
    base = [c.value for c in BASE_CATEGORIES]
    first_part = [c.value for c in SPLIT_FIRST]
    special = {
        S.VALID_WITH_DISABILITY: [*base, _C.DISABILITY.value],
        S.IDENTITY_ONLY: base[:1],
        S.OTHER_PURPOSE: [*base, _C.DISABILITY.value],
        S.SPLIT_VALID: first_part,
    }
    categories = draw.objects([special.get(name, base) for name in sc.tolist()])
    purpose = np.where(
        sc == S.OTHER_RECIPIENT,
        np.array([PURPOSE_OTHER[OTHER_RECIPIENT[s]] for s in state.tolist()], dtype=object),
        np.where(sc == S.OTHER_PURPOSE, PURPOSE_REFERRAL, PURPOSE_STATE),
    ).astype(object)
    purpose_code = np.where(
        sc == S.OTHER_RECIPIENT,
        np.array(
            [PURPOSE_CODE_OTHER[OTHER_RECIPIENT[s]].value for s in state.tolist()], dtype=object
        ),
        np.where(
            sc == S.OTHER_PURPOSE,
            Purpose.IDEA_EVALUATION_REFERRAL.value,
            Purpose.STATE_LONGITUDINAL_DATA_SYSTEM.value,
        ),
    ).astype(object)
    primary, contact = signers
    guardian = np.select(
        [sc == S.NON_PARENT, sc == S.SIBLING_GUARDIAN],
        [contact[who], primary[another_child(kids)[who]]],
        primary[who],
    )
    late = sc == S.BEFORE_GUARDIANSHIP
    became = np.minimum(signed[late] + draw.offsets(rng, int(late.sum()), 3, 30), demo - DAY)
    table: Columns = {
        "id": first_id + np.arange(k, dtype=np.int64),
        "child_id": kids.ids[who],
        "guardian_id": guardian,
        "signature_evidence": draw.where(sc != S.UNSIGNED, evidence),
        "signed_date": np.where(sc == S.SIGNED_UNDATED, np.datetime64("NaT", "D"), signed),
        "recipient_id": draw.where(~by_class, np.where(sc == S.OTHER_RECIPIENT, other, own)),
        "recipient_category": draw.where(
            by_class, np.full(k, RecipientCategory.STATE_EDUCATION_DATA_SYSTEM.value, object)
        ),
        "purpose": purpose,
        "purpose_code": purpose_code,
        "record_categories": categories,
        "expires_date": expires,
        "revoked_date": revoked,
    }
    split = np.flatnonzero(sc == S.SPLIT_VALID)
    rest = [c for c in base if c not in first_part]
    second = {name: column[split] for name, column in table.items()}
    second["id"] = first_id + k + np.arange(len(split), dtype=np.int64)
    second["record_categories"] = draw.objects([rest] * len(split))
    table = {name: np.concatenate([column, second[name]]) for name, column in table.items()}
    return table, (guardian[late], became)


def notices(
    rng: np.random.Generator, kids: Children, recipients: dict[str, int], first_id: int
) -> tuple[Columns, np.ndarray]:
    """The ``enrollment_notices`` table for children aged four and up in states with a demo
    school district, and the scenario index (into ``NOTICE_SCENARIOS``) of those children."""
    demo = draw.day(DEMO_DATE)
    state = np.array([p.state for p in PROGRAMS], dtype=object)[kids.program]
    eligible = np.flatnonzero(np.isin(state, list(SCHOOL_DISTRICT)) & (kids.age >= 4))
    labels = draw.shuffled_labels(rng, len(eligible), list(NOTICE_WEIGHTS.values()))
    sc = np.array(NOTICE_SCENARIOS, dtype=object)[labels]
    keep = sc != NoticeScenario.NONE
    who, sc = eligible[keep], sc[keep]
    k = len(who)
    notified = np.select(
        [sc == NoticeScenario.RECENT, sc == NoticeScenario.REFUSED],
        [demo - draw.offsets(rng, k, 1, 9), demo - draw.offsets(rng, k, 20, 60)],
        demo - draw.offsets(rng, k, 30, 120),
    )
    refused = np.where(
        sc == NoticeScenario.REFUSED,
        notified + draw.offsets(rng, k, 2, 10),
        np.datetime64("NaT", "D"),
    )
    district = np.array([recipients[SCHOOL_DISTRICT[s]] for s in state[who].tolist()])
    table: Columns = {
        "id": first_id + np.arange(k, dtype=np.int64),
        "child_id": kids.ids[who],
        "recipient_id": district,
        "notified_date": notified,
        "refused_date": refused,
    }
    return table, labels


def statements(
    rng: np.random.Generator, kids: Children, entry: np.ndarray, first_id: int
) -> Columns:
    """The ``parent_statements`` table: about 2% of children, on one disputed field each."""
    demo = draw.day(DEMO_DATE)
    who = np.flatnonzero(rng.random(len(kids.ids)) < STATEMENT_SHARE)
    field = draw.pick(rng, STATEMENT_FIELDS, len(who))
    filed = draw.between(rng, np.minimum(entry[who], demo - DAY), np.full(len(who), demo - DAY))
    return {
        "id": first_id + np.arange(len(who), dtype=np.int64),
        "child_id": kids.ids[who],
        "field": field,
        "statement": np.array([STATEMENT_TEXT[f] for f in field.tolist()], dtype=object),
        "filed_date": filed,
    }
