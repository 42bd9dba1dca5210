"""The rules of each legal basis (45 CFR 1303.22), vectorized over a batch of children.

``agreement_reason`` says whether an agreement may be used at all on the run date; the
``*_basis`` functions give every child of the batch a reason code (an index into ``REASONS``,
``DISCLOSED`` when the child's basis holds). Boundaries, all inclusive of the date named:

- agreement: in force from ``effective`` through ``expires`` (the expiry date is its last
  day); a suspension bars the recipient from ``start`` through ``end`` (no end: open-ended);
  the annual review (1303.22(d)) holds from ``last_reviewed`` through the same calendar day a
  year later (reviewed 2025-11-28: fine on 2026-11-28, overdue on 2026-11-29; a review on
  29 February is due on 28 February). A review dated after the run date does not count
  (fail closed: what was reviewed before the run date is unknown).
- consent: valid when ``signed_date <= run_date``, ``expires_date >= run_date`` (valid through
  its expiry date) and not ``revoked_date <= run_date`` (revoked on the run date: withheld;
  revoked after it: still valid for this run, revocation is not retroactive).
- consent signer: a parent of this child from ``signer_since`` through ``signer_until`` (a
  relationship that began on the signing date counts; one that ended the day before does not).
- notice: ``notified_date + notice_days <= run_date``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from privacy.agreements import Agreement, LegalBasis
from privacy.errors import DecisionError
from privacy.reasons import Reason
from schemas.codes import EntityLevel, Purpose, RecipientCategory, RecordCategory, Relationship

REASONS: tuple[Reason, ...] = tuple(Reason)
CODE: dict[Reason, int] = {reason: index for index, reason in enumerate(REASONS)}
OK = CODE[Reason.DISCLOSED]

CATEGORY_BIT: dict[str, int] = {c.value: 1 << i for i, c in enumerate(RecordCategory)}
DISABILITY_BIT = CATEGORY_BIT[RecordCategory.DISABILITY]

#: A consent's validity checks in order. A consent is valid for this recipient and purpose
#: when it passes all of them; a child whose consents are all invalid gets the first failing
#: check of its "closest" consent, the one passing the most checks in this order (ties cannot
#: change the reason). So a parent's revocation is reported over an older consent that names
#: another recipient.
CONSENT_CHECKS: tuple[Reason, ...] = (
    Reason.CONSENT_OTHER_RECIPIENT,
    Reason.CONSENT_OTHER_PURPOSE,
    Reason.CONSENT_UNSIGNED,
    Reason.CONSENT_UNDATED,
    Reason.CONSENT_NOT_BY_PARENT,
    Reason.CONSENT_SIGNED_AFTER_RUN_DATE,
    Reason.CONSENT_EXPIRED,
    Reason.CONSENT_REVOKED,
)
CONSENT_COLUMNS = (
    "child_id",
    "signer_child_id",
    "signer_relationship",
    "signer_since",
    "signer_until",
    "signature_evidence",
    "signed_date",
    "recipient_code",
    "recipient_category",
    "purpose_code",
    "record_categories",
    "expires_date",
    "revoked_date",
)
#: Relationships that make a person a parent under 45 CFR 1305.2 (every one but other_contact).
PARENT_RELATIONSHIPS = frozenset(
    r.value for r in Relationship if r is not Relationship.OTHER_CONTACT
)
NOTICE_COLUMNS = ("child_id", "recipient_code", "notified_date", "refused_date")
#: Entity levels that may receive data for an audit, evaluation or study (1303.22(c)(2)-(3)).
AUDIT_LEVELS = frozenset({EntityLevel.FEDERAL, EntityLevel.STATE, EntityLevel.ACTS_FOR_PROGRAM})
#: Who may receive records on notice (1303.22(b)): a school or a local educational agency.
NOTICE_RECIPIENTS = frozenset({RecipientCategory.SCHOOL, RecipientCategory.LOCAL_EDUCATION_AGENCY})
NOTICE_CATEGORIES = frozenset({RecordCategory.IDENTITY, RecordCategory.ENROLLMENT})


@dataclass(frozen=True)
class RecipientInfo:
    """The recipient as the decision needs it: its code, category, entity level and
    jurisdiction (``state``: the one state whose programs it may receive; none: no program's,
    default deny)."""

    code: str
    category: RecipientCategory | str
    entity_level: EntityLevel | str
    state: str | None = None


def in_jurisdiction(program_state: str | None, recipient: RecipientInfo) -> bool:
    """Whether a program of ``program_state`` may share with ``recipient`` at all: both states
    known and the same (a hub serving several states keeps each state's data apart, and a
    recipient without a state gets nothing; 42 U.S.C. 9836a(b)(4))."""
    mine = (recipient.state or "").strip().upper()
    theirs = (program_state or "").strip().upper()
    return bool(mine) and mine == theirs


def review_due(last_reviewed: dt.date) -> dt.date:
    """The last day an agreement reviewed on ``last_reviewed`` counts as reviewed."""
    try:
        return last_reviewed.replace(year=last_reviewed.year + 1)
    except ValueError:  # 29 February: due one day early rather than one day late
        return last_reviewed.replace(year=last_reviewed.year + 1, day=28)


def agreement_reason(
    agreement: Agreement, recipient: RecipientInfo, run_date: dt.date
) -> Reason | None:
    """Why nothing may leave under ``agreement`` on ``run_date``, or None when it may.

    Checked in this order: not yet effective, expired, suspended, review overdue, the
    recipient's jurisdiction (a recipient without a state receives nothing), then the basis'
    conditions on the recipient and the agreement.
    """
    if run_date < agreement.effective:
        return Reason.AGREEMENT_NOT_YET_EFFECTIVE
    if agreement.expires is not None and run_date > agreement.expires:
        return Reason.AGREEMENT_EXPIRED
    for window in agreement.suspensions:
        if window.start <= run_date and (window.end is None or run_date <= window.end):
            return Reason.RECIPIENT_SUSPENDED
    if not agreement.last_reviewed <= run_date <= review_due(agreement.last_reviewed):
        return Reason.AGREEMENT_REVIEW_OVERDUE
    if not (recipient.state or "").strip():
        return Reason.RECIPIENT_NO_JURISDICTION
    basis = agreement.legal_basis
    if basis in (LegalBasis.AUDIT_EVALUATION, LegalBasis.STUDY):
        if recipient.entity_level not in AUDIT_LEVELS:
            return Reason.RECIPIENT_NOT_ELIGIBLE
        if not (agreement.destruction and agreement.destruction.strip()):
            return Reason.DESTRUCTION_TERMS_MISSING
    if basis is LegalBasis.SCHOOL_ENROLLMENT_NOTICE and recipient.category not in NOTICE_RECIPIENTS:
        return Reason.RECIPIENT_NOT_ELIGIBLE
    return None


# -- column helpers ---------------------------------------------------------------------------


def require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    """``DecisionError`` naming the first column ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DecisionError(f"{name} frame lacks column(s) {', '.join(missing)}")


def days(values: pd.Series, column: str) -> np.ndarray:
    """A date column as ``datetime64[D]`` (missing: NaT); date objects, datetimes or ISO text."""
    if len(values) == 0:
        return np.empty(0, dtype="datetime64[D]")
    try:
        stamps = pd.to_datetime(values)
    except (TypeError, ValueError, OverflowError):
        raise DecisionError(f"column {column}: a value is not a date") from None
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_localize(None)
    return stamps.to_numpy(dtype="datetime64[D]")


def truth(values: pd.Series | np.ndarray) -> np.ndarray:
    """A boolean array with missing values as False (fail closed)."""
    if isinstance(values, np.ndarray):
        return values.astype(bool)
    return values.to_numpy(dtype=bool, na_value=False)


def nonblank(values: pd.Series) -> np.ndarray:
    """Whether each value is present and not blank text."""
    present = truth(values.notna())
    if not present.any():
        return present
    try:
        text = pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        text = pa.array(values.astype("str"), type=pa.string(), from_pandas=True)
    filled = pc.greater(pc.binary_length(pc.utf8_trim_whitespace(text)), 0).fill_null(False)
    return present & filled.to_numpy(zero_copy_only=False)


def category_masks(values: pd.Series) -> np.ndarray:
    """Each row's record categories as a bit mask; lists, tuples, Arrow lists or "a,b" text.

    Vectorized: the lists are joined to text, factorized, and only the distinct category sets
    are parsed. Unknown category names add nothing (fail closed).
    """
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    dtype = values.dtype
    if isinstance(dtype, pd.ArrowDtype) and pa.types.is_list(dtype.pyarrow_dtype):
        joined = pd.Series(pc.binary_join(values.array.__arrow_array__(), ","))
    elif dtype != np.dtype(object) and pd.api.types.is_string_dtype(dtype):
        joined = values
    else:
        joined = values.str.join(",")
    codes, uniques = pd.factorize(joined, use_na_sentinel=True)
    masks = np.zeros(len(uniques) + 1, dtype=np.int64)  # the last slot: missing (-1)
    for index, text in enumerate(uniques):
        for name in str(text).split(","):
            masks[index] |= CATEGORY_BIT.get(name.strip(), 0)
    return masks[codes]


def category_mask(categories: Sequence[str]) -> int:
    """The bit mask of a set of record categories."""
    mask = 0
    for name in categories:
        mask |= CATEGORY_BIT[str(name)]
    return mask


# -- per-basis rules --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildBasis:
    """Each child's reason code under the basis and whether disability fields may flow."""

    codes: np.ndarray
    disability_ok: np.ndarray


def consent_basis(
    child_index: pd.Index,
    consents: pd.DataFrame,
    recipient: RecipientInfo,
    run_date: dt.date,
    needed: int,
    purpose: Purpose | str | None,
) -> ChildBasis:
    """Written consent (1303.22(a)), decided category by category over all valid consents.

    A consent is valid for this disclosure when it passes every check of ``CONSENT_CHECKS``:

    - it names this recipient (its ``recipient_code``), or names no recipient and this
      recipient's class (``recipient_category``); a consent naming another recipient does not
      become valid through its class;
    - its ``purpose_code`` is the agreement's ``purpose`` (none on either side: no match);
    - it is signed (``signature_evidence``) and dated (``signed_date``);
    - its signer is a parent of *this* child on the signing date: the signer's guardian row
      belongs to the child (``signer_child_id == child_id``), holds a parent relationship of
      1305.2 (``signer_relationship``, not ``other_contact``), and that relationship covers
      the signing date (``signer_since <= signed_date <= signer_until``, both days included;
      an empty bound is open: "since before the record", "still");
    - it is in force on the run date (signed on or before it, not expired before it, not
      revoked on or before it).

    The child's record leaves when the valid consents *together* name every category in
    ``needed`` (disability excluded: the field rule decides it): several consents may each
    cover a part. Disability fields need a valid consent naming disability. Otherwise the
    reason is ``consent_category_not_covered`` when some consent is valid, the closest
    consent's first failing check when none is, and ``no_consent`` when there is none.
    """
    require(consents, CONSENT_COLUMNS, "consents")
    n = len(child_index)
    pos = child_index.get_indexer(consents["child_id"])
    run = np.datetime64(run_date, "D")
    code = consents["recipient_code"]
    named = np.where(
        truth(code.notna()),
        truth(code.eq(recipient.code)),
        truth(consents["recipient_category"].eq(str(recipient.category))),
    )
    same_purpose = (
        truth(consents["purpose_code"].eq(str(purpose)))
        if purpose is not None
        else np.zeros(len(consents), dtype=bool)
    )
    masks = category_masks(consents["record_categories"])
    signed = days(consents["signed_date"], "signed_date")
    expires = days(consents["expires_date"], "expires_date")
    revoked = days(consents["revoked_date"], "revoked_date")
    since = days(consents["signer_since"], "signer_since")
    until = days(consents["signer_until"], "signer_until")
    by_parent = (
        truth(consents["signer_child_id"].eq(consents["child_id"]))
        & truth(consents["signer_relationship"].isin(PARENT_RELATIONSHIPS))
        & ~np.isnat(signed)
        & (np.isnat(since) | (since <= signed))
        & (np.isnat(until) | (signed <= until))
    )
    fails = (
        ~named,
        ~same_purpose,
        ~nonblank(consents["signature_evidence"]),
        np.isnat(signed),
        ~by_parent,
        signed > run,
        expires < run,
        revoked <= run,
    )
    rank = np.full(len(consents), len(fails), dtype=np.int8)
    for index in range(len(fails) - 1, -1, -1):
        rank[fails[index]] = index
    inside = pos >= 0
    best = np.full(n, -1, dtype=np.int8)
    np.maximum.at(best, pos[inside], rank[inside])
    valid = inside & (rank == len(fails))
    covered = np.zeros(n, dtype=np.int64)
    np.bitwise_or.at(covered, pos[valid], masks[valid])
    lookup = np.array(
        [CODE[Reason.NO_CONSENT], *(CODE[r] for r in CONSENT_CHECKS), OK], dtype=np.int16
    )
    codes = lookup[best + 1]
    gap = (best == len(fails)) & ((covered & needed) != needed)
    codes[gap] = CODE[Reason.CONSENT_CATEGORY_NOT_COVERED]
    return ChildBasis(codes=codes, disability_ok=(covered & DISABILITY_BIT) != 0)


def notice_basis(
    child_index: pd.Index,
    notices: pd.DataFrame,
    recipient: RecipientInfo,
    run_date: dt.date,
    notice_days: int,
) -> ChildBasis:
    """Notice with a chance to refuse (1303.22(b)), to the school or LEA named on the notice.

    A refusal of a notice to this recipient blocks, whatever its date: the records have not
    left yet and the parent has said no (a refusal is the objection the rule asks for before
    disclosure, unlike a consent's revocation, which is not retroactive). Otherwise one notice
    whose period has elapsed suffices; the reason otherwise is, in this order: refused, period
    not elapsed (a notice on file but too recent), missing.
    """
    require(notices, NOTICE_COLUMNS, "notices")
    n = len(child_index)
    pos = child_index.get_indexer(notices["child_id"])
    ours = (pos >= 0) & truth(notices["recipient_code"].eq(recipient.code))
    notified = days(notices["notified_date"], "notified_date")
    refused = days(notices["refused_date"], "refused_date")
    elapsed = notified + np.timedelta64(notice_days, "D") <= np.datetime64(run_date, "D")
    # 0 missing, 1 not elapsed, 2 elapsed, 3 refused; the highest wins
    rank = np.where(~np.isnat(refused), 3, np.where(elapsed, 2, np.where(np.isnat(notified), 0, 1)))
    best = np.zeros(n, dtype=np.int8)
    np.maximum.at(best, pos[ours], rank[ours].astype(np.int8))
    lookup = np.array(
        [
            CODE[Reason.NOTICE_MISSING],
            CODE[Reason.NOTICE_PERIOD_NOT_ELAPSED],
            OK,
            CODE[Reason.NOTICE_REFUSED],
        ],
        dtype=np.int16,
    )
    return ChildBasis(codes=lookup[best], disability_ok=np.zeros(n, dtype=bool))


def without_consent_basis(n: int) -> ChildBasis:
    """Audit, evaluation or study (1303.22(c)(2)-(3)): no per-child condition."""
    return ChildBasis(codes=np.full(n, OK, dtype=np.int16), disability_ok=np.zeros(n, dtype=bool))
