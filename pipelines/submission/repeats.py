"""One disclosure, one log entry: a repeat of a disclosure already logged is not logged again.

The disclosure log (45 CFR 1303.24(b)) lists every party that received a child's PII and why,
with the date (as FERPA 34 CFR 99.32 and IDEA 34 CFR 300.614 keep it). Its unit is a
*disclosure*: this child's record, with this content, to this recipient, under this agreement,
on this date, through this destination. A rerun of the same destination on the same run date
that delivers identical content again (``resend: full``, a rerun after a failure elsewhere)
discloses nothing the recipient did not already receive through that channel on that date, so
it is the same disclosure and gets no second entry. Everything that makes the entry say
something new is part of the identity and is logged:

- another destination (a second system of the same recipient holds a copy of its own, and
  every copy a state system holds must be explained by an entry of that destination's runs);

- another date (``resend: full`` on the next night is a new disclosure, logged again);
- other content (``payload_digest``) or other fields (an Ed-Fi resend carrying other
  resources), another recipient or agreement (another purpose or legal basis);
- another action (a ``delete`` is never the same as a ``disclose``).

A correction that reverts on the same date (A, then B, then A) logs A once and B once: the log
says the recipient received both that day, which is what happened. Nothing here rewrites or
removes an entry; the chain stays append-only.

The lookup reads only the destination's runs of that run date (``runs.run_date``), then their
entries by the indexed ``run_id``, so its cost does not grow with the log's history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas import DisclosureEntry, Run

Identity = tuple[str, str, str, str, str, str, str, tuple[str, ...]]


def _identity(
    program: str,
    child: str,
    recipient: str,
    agreement: str,
    action: str,
    run_date: str,
    digest: str,
    fields: Sequence[str],
) -> Identity:
    return (program, child, recipient, agreement, action, run_date, digest, tuple(fields))


def new_disclosures(session: Session, disclosures: Mapping[str, Sequence[Any]]) -> list[int] | None:
    """The positions of the entries of ``disclosures`` (ledger columns, as
    :func:`privacy.ledger.append_columns` takes them) not already in the log (nor repeats of
    one before them), in order; None when that is every entry."""
    if not disclosures["run_id"]:
        return None
    d = disclosures
    dates = set(d["run_date"])
    runs = set(d["run_id"])
    channels = select(Run.destination).where(Run.id.in_(runs))
    run_ids = list(
        session.scalars(
            select(Run.id).where(Run.run_date.in_(dates), Run.destination.in_(channels))
        )
    )
    run_ids += sorted(runs - set(run_ids))
    programs = set(d["program_code"])
    recipients = set(d["recipient_code"])
    e = DisclosureEntry
    seen: set[Identity] = set()
    for start in range(0, len(run_ids), 500):
        rows = session.execute(
            select(
                e.program_code,
                e.child_local_id,
                e.recipient_code,
                e.agreement_id,
                e.action,
                e.run_date,
                e.payload_digest,
                e.fields,
            ).where(
                e.run_id.in_(run_ids[start : start + 500]),
                e.run_date.in_(dates),
                e.program_code.in_(programs),
                e.recipient_code.in_(recipients),
            )
        )
        seen.update(
            _identity(p, c, r, a, act, day.isoformat(), digest, fields or ())
            for p, c, r, a, act, day, digest, fields in rows
        )
    if not seen:  # the date's first delivery of these programs: nothing to compare
        return None
    children = {(key[0], key[1]) for key in seen}
    fresh = []
    entries = zip(
        d["program_code"],
        d["child_local_id"],
        d["recipient_code"],
        d["agreement_id"],
        d["action"],
        d["run_date"],
        d["payload_digest"],
        d["fields"],
        strict=True,
    )
    for i, (program, child, recipient, agreement, action, day, digest, fields) in enumerate(
        entries
    ):
        if (program, child) not in children:
            fresh.append(i)
            continue
        key = _identity(
            program, child, recipient, agreement, action, day.isoformat(), digest, fields
        )
        if key not in seen:
            seen.add(key)
            fresh.append(i)
    return fresh
