"""Properties of the decision over generated populations, agreements and registries.

``reference`` is an independent, deliberately slow per-child oracle written from the rules
(docs/domain.md sections 1, 3, 5 and the decision's documented choices); the vectorized
``decide`` must agree with it on every child, every removed field and every carried statement.

The consent rules it encodes (45 CFR 1303.22(a), "parent" in 1305.2): a consent counts only
when signed and dated by a parent *of this child* on the signing date (a guardian row of the
same child whose relationship, other than ``other_contact``, covers the signing date), for
this recipient (or its class) and the agreement's purpose code, in force on the run date; the
record leaves when the valid consents together name every category sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy.agreements import (
    Agreement,
    LegalBasis,
    OutputLevel,
    StatementHandling,
    Suspension,
    TransformSpec,
)
from privacy.decision import RecipientInfo, decide
from privacy.fields import CATALOG
from privacy.participation import OptIn, ParticipationState, ProgramStatus
from privacy.reasons import Reason
from schemas.codes import OptInScope, RecordCategory
from tests.privacy.builders import (
    FEDERAL,
    LEA,
    NOWHERE,
    PRIVATE,
    RESEARCHER,
    RUN,
    SEDS,
    child,
    inputs,
)

R = Reason
PROGRAMS = ("VT-HS-01", "MO-HS-03", "NM-AIAN-07")
FIELD_POOL = (
    "program_code", "child_local_id", "birth_date", "race", "home_language", "entry_date",
    "days_present", "homeless", "disability", "iep", "ifsp", "tribal_affiliation",
)  # fmt: skip
#: A transform that fits each pooled field other than ``keep`` (the decision only asks
#: whether a field leaves transformed, not how).
TRANSFORMED = {"birth_date": "month", "entry_date": "month", "child_local_id": "pseudonymize"}
#: 45 CFR 1305.2 "parent", as the relationship codes spell it (written out, not imported).
PARENTS = {"mother", "father", "grandparent_caregiver", "foster_parent", "guardian",
           "adoptive_placement"}  # fmt: skip
SLDS, REFERRAL = "state_longitudinal_data_system", "idea_evaluation_referral"
DISABILITY = {"disability", "iep", "ifsp"}
OFFSETS = (-400, -366, -365, -364, -30, -11, -10, -9, -1, 0, 1, 30)
RECIPIENTS = (SEDS, LEA, FEDERAL, RESEARCHER, PRIVATE, NOWHERE)

dates = st.sampled_from(OFFSETS).map(lambda d: RUN + dt.timedelta(days=d))
maybe_dates = st.none() | dates
categories = st.lists(st.sampled_from([c.value for c in RecordCategory]), unique=True)
ALL = [c.value for c in RecordCategory]
DAY = dt.timedelta(days=1)


@st.composite
def agreements(draw: st.DrawFn) -> tuple[Agreement, RecipientInfo]:
    basis = draw(st.sampled_from(list(LegalBasis)))
    fitting = {
        LegalBasis.CONSENT: (SEDS,),
        LegalBasis.SCHOOL_ENROLLMENT_NOTICE: (LEA,),
        LegalBasis.AUDIT_EVALUATION: (SEDS, FEDERAL),
        LegalBasis.STUDY: (RESEARCHER, FEDERAL),
    }[basis]
    recipient = draw(st.sampled_from([*fitting * 6, *RECIPIENTS]))
    names = draw(st.lists(st.sampled_from(FIELD_POOL), min_size=1, unique=True))
    fields = {
        n: TransformSpec(
            name=draw(st.sampled_from(["keep", "keep", "drop", TRANSFORMED.get(n, "keep")]))
        )
        for n in names
    }
    sent_categories = {CATALOG[n].category for n in names}
    extra = {RecordCategory(c) for c in draw(categories)}
    starts = draw(st.lists(st.tuples(dates, maybe_dates), max_size=2))
    suspensions = tuple(
        Suspension.model_construct(start=s, end=e, reason="violation") for s, e in starts
    )
    agreement = Agreement.model_construct(
        id="generated",
        recipient=recipient.code,
        legal_basis=basis,
        purpose="generated",
        purpose_code=draw(st.sampled_from([SLDS, SLDS, SLDS, REFERRAL, None])),
        effective=draw(dates),
        expires=draw(maybe_dates),
        last_reviewed=draw(dates),
        suspensions=suspensions if draw(st.integers(0, 3)) == 0 else (),
        destruction=draw(st.sampled_from([None, "  ", *["destroy after a year"] * 10])),
        idea_exception=draw(st.sampled_from([None, None, "34 CFR 300.622"])),
        notice_days=draw(st.sampled_from([0, 10, 30])),
        record_categories=tuple(sent_categories | extra),
        output=draw(st.sampled_from(list(OutputLevel))),
        parent_statements=draw(st.sampled_from(list(StatementHandling))),
        statements_on_transformed_fields=draw(st.sampled_from(list(StatementHandling))),
        delete_on_revocation=False,
        min_cell_size=10,
        fields=fields,
    )
    if draw(st.integers(0, 7)):  # mostly in force, so the child rules get exercised
        agreement = agreement.model_copy(
            update={"effective": RUN - dt.timedelta(days=400), "expires": None,
                    "last_reviewed": RUN - dt.timedelta(days=30), "suspensions": ()}
        )  # fmt: skip
    return agreement, recipient


@st.composite
def registries(draw: st.DrawFn) -> dict[str, ProgramStatus]:
    registry = {}
    for code in PROGRAMS:
        if draw(st.integers(0, 7)) == 0:
            continue  # missing from the registry
        aian = code.startswith("NM-AIAN") or draw(st.integers(0, 5)) == 0
        scope = draw(st.sampled_from([None, *[OptInScope.RECORD] * 2, OptInScope.AGGREGATE]))
        excluded = frozenset(draw(st.lists(st.sampled_from(FIELD_POOL), max_size=2)))
        opt_in = OptIn("Resolution", scope, excluded, RUN, None, "council") if scope else None
        state = draw(
            st.sampled_from([*ParticipationState, *[ParticipationState.PARTICIPATING] * 4])
        )
        registry[code] = ProgramStatus(code, aian, state, RUN, "tester", opt_in if aian else None)
    return registry


@st.composite
def consent_rows(draw: st.DrawFn, i: int, recipient: RecipientInfo) -> dict[str, Any]:
    """A consent of child ``i``: valid to start with, then up to three of its values redrawn
    from wide pools (so single defects at every boundary are common, and valid consents
    that only together cover the agreement's categories too)."""
    pools = {
        "signer_child_id": st.sampled_from([i, i + 1, None]),
        "signer_relationship": st.sampled_from(["mother", "foster_parent", "other_contact", None]),
        "signer_since": maybe_dates,
        "signer_until": maybe_dates,
        "purpose_code": st.sampled_from([SLDS, REFERRAL, None]),
        "signature_evidence": st.sampled_from(["sig", None, "", " "]),
        "signed_date": maybe_dates,
        "recipient_code": st.sampled_from([recipient.code, "OTHER", None]),
        "recipient_category": st.sampled_from([recipient.category, "health", None]),
        "record_categories": st.none() | categories,
        "expires_date": maybe_dates,
        "revoked_date": maybe_dates,
    }
    row: dict[str, Any] = {
        "child_id": i,
        "signer_child_id": i,
        "signer_relationship": "mother",
        "signer_since": None,
        "signer_until": None,
        "purpose_code": SLDS,
        "signature_evidence": "sig",
        "signed_date": RUN - 40 * DAY,
        "recipient_code": recipient.code,
        "recipient_category": None,
        "record_categories": ALL,
        "expires_date": None,
        "revoked_date": None,
    }
    for name in draw(st.lists(st.sampled_from(sorted(pools)), max_size=3, unique=True)):
        row[name] = draw(pools[name])
    return row


@st.composite
def populations(draw: st.DrawFn, recipient: RecipientInfo) -> dict[str, list[dict[str, Any]]]:
    n = draw(st.integers(0, 10))
    mislabelled = draw(st.sampled_from([None, None, None, PROGRAMS[0]]))
    kids, consents, notices, statements = [], [], [], []
    for i in range(1, n + 1):
        program = draw(st.sampled_from(PROGRAMS))
        kid = child(i, program=program)
        if program == mislabelled and draw(st.booleans()):
            kid["program_type"] = "aian"  # the children say AIAN, the registry may not
        kids.append(kid)
        for _ in range(draw(st.integers(0, 3))):
            consents.append(draw(consent_rows(i, recipient)))
        for _ in range(draw(st.integers(0, 2))):
            notices.append({
                "child_id": i,
                "recipient_code": draw(st.sampled_from([recipient.code, "OTHER"])),
                "notified_date": draw(maybe_dates),
                "refused_date": draw(st.sampled_from([None] * 4) | dates),
            })  # fmt: skip
        for name in draw(st.lists(st.sampled_from(FIELD_POOL), max_size=2, unique=True)):
            statements.append({"child_id": i, "field": name, "filed_date": RUN})
    return {"children": kids, "consents": consents, "notices": notices, "statements": statements}


# -- the reference oracle: one child at a time, plain Python ---------------------------------


def anniversary(day: dt.date) -> dt.date:
    if (day.month, day.day) == (2, 29):
        return dt.date(day.year + 1, 2, 28)
    return dt.date(day.year + 1, day.month, day.day)


def agreement_block(a: Agreement, r: RecipientInfo) -> Reason | None:
    if a.effective > RUN:
        return R.AGREEMENT_NOT_YET_EFFECTIVE
    if a.expires is not None and a.expires < RUN:
        return R.AGREEMENT_EXPIRED
    for s in a.suspensions:
        if s.start <= RUN and (s.end is None or s.end >= RUN):
            return R.RECIPIENT_SUSPENDED
    if a.last_reviewed > RUN or anniversary(a.last_reviewed) < RUN:
        return R.AGREEMENT_REVIEW_OVERDUE
    if not r.state:  # no jurisdiction on record: no program's data (default deny)
        return R.RECIPIENT_NO_JURISDICTION
    if a.legal_basis in (LegalBasis.AUDIT_EVALUATION, LegalBasis.STUDY):
        if r.entity_level not in ("federal", "state", "acts_for_program"):
            return R.RECIPIENT_NOT_ELIGIBLE
        if not (a.destruction or "").strip():
            return R.DESTRUCTION_TERMS_MISSING
    if a.legal_basis is LegalBasis.SCHOOL_ENROLLMENT_NOTICE and r.category not in (
        "school", "local_education_agency"
    ):  # fmt: skip
        return R.RECIPIENT_NOT_ELIGIBLE
    return None


def by_a_parent_of_this_child(c: Mapping[str, Any]) -> bool:
    """The signer is a guardian row of this very child, a parent under 1305.2, and the
    relationship held on the signing date (open bounds when unknown)."""
    signed = c["signed_date"]
    return (
        c["signer_child_id"] == c["child_id"]
        and c["signer_relationship"] in PARENTS
        and signed is not None
        and (c["signer_since"] is None or c["signer_since"] <= signed)
        and (c["signer_until"] is None or signed <= c["signer_until"])
    )


def consent_failures(c: Mapping[str, Any], a: Agreement, r: RecipientInfo) -> list[Reason]:
    """Every validity check this consent fails, in the documented order."""
    failed = []
    names = c["recipient_code"] == r.code if c["recipient_code"] else (
        c["recipient_category"] == r.category
    )  # fmt: skip
    if not names:
        failed.append(R.CONSENT_OTHER_RECIPIENT)
    if a.purpose_code is None or c["purpose_code"] != a.purpose_code:
        failed.append(R.CONSENT_OTHER_PURPOSE)
    if not (c["signature_evidence"] or "").strip():
        failed.append(R.CONSENT_UNSIGNED)
    if c["signed_date"] is None:
        failed.append(R.CONSENT_UNDATED)
    if not by_a_parent_of_this_child(c):
        failed.append(R.CONSENT_NOT_BY_PARENT)
    if c["signed_date"] is not None and c["signed_date"] > RUN:
        failed.append(R.CONSENT_SIGNED_AFTER_RUN_DATE)
    if c["expires_date"] is not None and c["expires_date"] < RUN:
        failed.append(R.CONSENT_EXPIRED)
    if c["revoked_date"] is not None and c["revoked_date"] <= RUN:
        failed.append(R.CONSENT_REVOKED)
    return failed


ORDER = [
    R.CONSENT_OTHER_RECIPIENT, R.CONSENT_OTHER_PURPOSE, R.CONSENT_UNSIGNED,
    R.CONSENT_UNDATED, R.CONSENT_NOT_BY_PARENT, R.CONSENT_SIGNED_AFTER_RUN_DATE,
    R.CONSENT_EXPIRED, R.CONSENT_REVOKED,
]  # fmt: skip


def sent(a: Agreement) -> list[str]:
    return [n for n, spec in a.fields.items() if spec.name != "drop"]


def valid_consents(a: Agreement, r: RecipientInfo, mine: list[dict[str, Any]]) -> list[dict]:
    return [c for c in mine if not consent_failures(c, a, r)]


def covered(a: Agreement, r: RecipientInfo, mine: list[dict[str, Any]]) -> set[str]:
    """Every category some valid consent names: they add up."""
    return {cat for c in valid_consents(a, r, mine) for cat in (c["record_categories"] or ())}


def consent_reason(a: Agreement, r: RecipientInfo, mine: list[dict[str, Any]]) -> Reason:
    needed = {str(c) for c in a.record_categories} | {str(CATALOG[n].category) for n in sent(a)}
    needed.discard("disability")
    if not mine:
        return R.NO_CONSENT
    if valid_consents(a, r, mine):
        return R.DISCLOSED if needed <= covered(a, r, mine) else R.CONSENT_CATEGORY_NOT_COVERED
    return ORDER[max(ORDER.index(consent_failures(c, a, r)[0]) for c in mine)]


def disability_consent(a: Agreement, r: RecipientInfo, mine: list[dict[str, Any]]) -> bool:
    return "disability" in covered(a, r, mine)


def notice_reason(a: Agreement, r: RecipientInfo, mine: list[dict[str, Any]]) -> Reason:
    ours = [n for n in mine if n["recipient_code"] == r.code]
    if any(n["refused_date"] is not None for n in ours):
        return R.NOTICE_REFUSED
    dated = [n for n in ours if n["notified_date"] is not None]
    if any(n["notified_date"] + dt.timedelta(days=a.notice_days) <= RUN for n in dated):
        return R.DISCLOSED
    return R.NOTICE_PERIOD_NOT_ELAPSED if dated else R.NOTICE_MISSING


@dataclass
class Expected:
    reason: Reason
    scope: str
    removed: dict[str, str]
    carried: set[str]
    valid_basis: bool


def reference(
    a: Agreement,
    r: RecipientInfo,
    registry: Mapping[str, ProgramStatus],
    population: dict[str, list[dict[str, Any]]],
    kid: dict[str, Any],
) -> Expected:
    of = {k: [x for x in v if x["child_id"] == kid["child_id"]] for k, v in population.items()}
    code = kid["program_code"]
    aian = any(
        k["program_type"] == "aian" for k in population["children"] if k["program_code"] == code
    )
    block = agreement_block(a, r)
    if a.legal_basis is LegalBasis.CONSENT:
        basis = consent_reason(a, r, of["consents"])
    elif a.legal_basis is LegalBasis.SCHOOL_ENROLLMENT_NOTICE:
        basis = notice_reason(a, r, of["notices"])
    else:
        basis = R.DISCLOSED
    valid = block is None and basis is R.DISCLOSED
    none = Expected(R.DISCLOSED, "none", {}, set(), valid)
    if block is not None:
        none.reason = block
        return none
    status = registry.get(code)
    aian = aian or (status is not None and status.is_aian)
    if status is None or status.state is ParticipationState.NOT_REGISTERED:
        none.reason = R.PROGRAM_NOT_REGISTERED
        return none
    if status.state is ParticipationState.WITHDRAWN:
        none.reason = R.PROGRAM_WITHDRAWN
        return none
    if aian and status.opt_in is None:
        none.reason = R.AIAN_NO_OPT_IN
        return none
    if basis is not R.DISCLOSED:
        none.reason = basis
        return none
    reason, scope = R.DISCLOSED, a.output.value
    if aian and status.opt_in.scope is OptInScope.AGGREGATE and a.output is OutputLevel.RECORD:
        reason, scope = R.AIAN_AGGREGATE_ONLY, "aggregate"
    removed: dict[str, str] = {}
    excluded = status.opt_in.excluded_fields if aian else frozenset()
    idea = bool((a.idea_exception or "").strip())
    for name in sent(a):
        category = CATALOG[name].category
        if name in excluded:
            removed[name] = R.AIAN_FIELD_EXCLUDED.value
        elif a.legal_basis is LegalBasis.SCHOOL_ENROLLMENT_NOTICE and category not in (
            "identity", "enrollment"
        ):  # fmt: skip
            removed[name] = R.NOTICE_CATEGORY_NOT_PERMITTED.value
        elif (
            category == "disability"
            and not idea
            and not (
                a.legal_basis is LegalBasis.CONSENT and disability_consent(a, r, of["consents"])
            )
        ):
            removed[name] = R.DISABILITY_CONSENT_MISSING.value
        elif name == "tribal_affiliation" and not (aian and status.opt_in is not None):
            removed[name] = R.TRIBAL_AFFILIATION_NOT_PERMITTED.value
    carried: set[str] = set()
    for s in of["statements"]:
        if s["field"] in sent(a) and s["field"] not in removed:
            transformed = a.fields[s["field"]].name != "keep"
            if a.parent_statements is not StatementHandling.CARRY:
                removed[s["field"]] = R.PARENT_STATEMENT_NOT_CARRIED.value
            elif transformed and a.statements_on_transformed_fields is not StatementHandling.CARRY:
                removed[s["field"]] = R.PARENT_STATEMENT_ON_TRANSFORMED_FIELD.value
            else:
                carried.add(s["field"])
    return Expected(reason, scope, removed, carried, valid)


# -- the properties ---------------------------------------------------------------------------


@st.composite
def cases(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    agreement, recipient = draw(agreements())
    return agreement, recipient, draw(registries()), draw(populations(recipient))


ORACLE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(case: tuple[Any, ...]):  # type: ignore[no-untyped-def]
    agreement, recipient, registry, population = case
    data = inputs(**population)
    return decide(data, agreement, recipient, RUN, participation=registry)


@ORACLE
@given(cases())
def test_decide_agrees_with_the_per_child_reference(case: tuple[Any, ...]) -> None:
    agreement, recipient, registry, population = case
    decision = run(case)
    children = decision.children.set_index("child_id")
    for kid in population["children"]:
        want = reference(agreement, recipient, registry, population, kid)
        got = children.loc[kid["child_id"]]
        assert (got["reason"], got["scope"]) == (want.reason.value, want.scope)
        assert bool(got["disclose"]) == (want.scope == agreement.output.value)
        rows = decision.field_removals[decision.field_removals["child_id"] == kid["child_id"]]
        assert dict(zip(rows["field"].astype(str), rows["reason"].astype(str), strict=True)) == (
            want.removed
        )
        carried = decision.statements[decision.statements["child_id"] == kid["child_id"]]
        assert set(carried["field"]) == want.carried


@PROFILE
@given(cases())
def test_no_child_without_a_valid_basis_is_disclosed_or_counted(case: tuple[Any, ...]) -> None:
    agreement, recipient, registry, population = case
    decision = run(case)
    contributing = decision.children[decision.children["scope"] != "none"]
    for child_id in contributing["child_id"]:
        kid = next(k for k in population["children"] if k["child_id"] == child_id)
        assert reference(agreement, recipient, registry, population, kid).valid_basis


@PROFILE
@given(cases())
def test_aian_program_without_active_opt_in_never_discloses(case: tuple[Any, ...]) -> None:
    _, _, registry, population = case
    decision = run(case)
    for kid, row in zip(population["children"], decision.children.itertuples(), strict=True):
        status = registry.get(kid["program_code"])
        said_aian = any(
            k["program_type"] == "aian"
            for k in population["children"]
            if k["program_code"] == kid["program_code"]
        )
        if (said_aian or (status is not None and status.is_aian)) and (
            status is None or status.opt_in is None
        ):
            assert not row.disclose and row.scope == "none"


@PROFILE
@given(cases())
def test_disability_fields_never_flow_without_the_category_consent(case: tuple[Any, ...]) -> None:
    agreement, recipient, _, population = case
    decision = run(case)
    mask = decision.field_mask
    idea = bool((agreement.idea_exception or "").strip())
    for name in DISABILITY & set(mask.columns):
        for child_id in mask.index[mask[name]]:
            if agreement.legal_basis is LegalBasis.CONSENT and not idea:
                mine = [c for c in population["consents"] if c["child_id"] == child_id]
                assert disability_consent(agreement, recipient, mine)
            else:
                assert idea and agreement.legal_basis is not LegalBasis.SCHOOL_ENROLLMENT_NOTICE


# -- consent: signer, purpose and cover, stated directly from 1303.22(a) -----------------------


def _consent_cases(case: tuple[Any, ...]) -> bool:
    agreement, recipient, _, _ = case
    return (
        agreement.legal_basis is LegalBasis.CONSENT
        and agreement_block(agreement, recipient) is None
    )


@PROFILE
@given(cases())
def test_every_category_sent_under_consent_is_named_by_a_valid_consent_of_a_parent(
    case: tuple[Any, ...],
) -> None:
    """1303.22(a): for each record category that leaves, some consent of this child names it,
    for this recipient and purpose, signed and dated by a parent of this child on that date,
    in force on the run date."""
    agreement, recipient, _, population = case
    if not _consent_cases(case):
        return
    decision = run(case)
    needed = {str(c) for c in agreement.record_categories}
    needed |= {str(CATALOG[n].category) for n in sent(agreement)}
    needed.discard("disability")
    for child_id in decision.children.loc[decision.children["scope"] != "none", "child_id"]:
        for category in needed:
            assert any(
                c["child_id"] == child_id
                and category in (c["record_categories"] or ())
                and c["signer_child_id"] == child_id
                and c["signer_relationship"] in PARENTS
                and c["signed_date"] is not None
                and (c["signer_since"] is None or c["signer_since"] <= c["signed_date"])
                and (c["signer_until"] is None or c["signed_date"] <= c["signer_until"])
                and c["purpose_code"] == agreement.purpose_code
                and (c["recipient_code"] == recipient.code if c["recipient_code"]
                     else c["recipient_category"] == recipient.category)
                and (c["signature_evidence"] or "").strip()
                and c["signed_date"] <= RUN
                and (c["expires_date"] is None or c["expires_date"] >= RUN)
                and (c["revoked_date"] is None or c["revoked_date"] > RUN)
                for c in population["consents"]
            )  # fmt: skip


@PROFILE
@given(cases(), st.randoms(use_true_random=False))
def test_splitting_consents_into_complementary_parts_changes_nothing(
    case: tuple[Any, ...], rnd: Any
) -> None:
    """Several valid consents together cover what one would: splitting each consent's
    categories over two otherwise identical consents gives the same decision."""
    agreement, recipient, registry, population = case
    split = []
    for c in population["consents"]:
        names = list(c["record_categories"] or ())
        cut = rnd.randint(0, len(names))
        rnd.shuffle(names)
        split += [{**c, "record_categories": names[:cut]}, {**c, "record_categories": names[cut:]}]
    whole, parts = run(case), run((agreement, recipient, registry,
                                   {**population, "consents": split}))  # fmt: skip
    columns = ["child_id", "reason", "scope", "disclose"]
    assert whole.children[columns].astype(str).equals(parts.children[columns].astype(str))
    assert whole.field_removals.astype(str).equals(parts.field_removals.astype(str))


@PROFILE
@given(cases())
def test_a_consent_signed_by_another_childs_guardian_never_discloses(
    case: tuple[Any, ...],
) -> None:
    """A guardian row of a sibling (or a data-entry slip) is not this child's parent."""
    agreement, recipient, registry, population = case
    if not _consent_cases(case):
        return
    moved = [{**c, "signer_child_id": c["child_id"] + 100} for c in population["consents"]]
    decision = run((agreement, recipient, registry, {**population, "consents": moved}))
    assert (decision.children["scope"] == "none").all()
    assert not decision.children["reason"].isin(["disclosed", "aian_aggregate_only"]).any()
