"""Guardians: one or two per child; foster parents for children in foster care, some
grandparents, and a few non-parent contacts (who may not sign a consent)."""

from __future__ import annotations

from typing import cast

import numpy as np

from pipelines.demo import draw
from pipelines.demo.draw import Columns
from pipelines.demo.names import AREA_CODES, GROUP_NAMES, GROUPS
from pipelines.demo.population import Children
from pipelines.demo.world import PROGRAMS, TRIBES
from schemas.codes import Race
from schemas.codes import Relationship as Rel

PRIMARY = (Rel.MOTHER, Rel.FATHER, Rel.GRANDPARENT_CAREGIVER, Rel.GUARDIAN, Rel.ADOPTIVE_PLACEMENT)
PRIMARY_WEIGHTS = (72, 12, 9, 5, 2)
SECOND_SHARE = 0.6
OTHER_CONTACT_SHARE = 0.05  # of second guardians, beyond those the consent scenarios need


def guardians(
    rng: np.random.Generator, kids: Children, first_id: int, needs_other_contact: np.ndarray
) -> tuple[Columns, np.ndarray, np.ndarray]:
    """The ``guardians`` table, rows of a child together (primary first), with the primary
    guardian id and the non-parent contact id (or -1) of each child."""
    n = len(kids.ids)
    primary = np.array([r.value for r in PRIMARY], dtype=object)[
        draw.choose(rng, n, PRIMARY_WEIGHTS)
    ]
    primary = np.where(kids.foster, Rel.FOSTER_PARENT.value, primary).astype(object)
    has_second = needs_other_contact | (rng.random(n) < SECOND_SHARE)
    other = needs_other_contact | (has_second & (rng.random(n) < OTHER_CONTACT_SHARE))
    second = np.select(
        [
            other,
            primary == Rel.MOTHER.value,
            primary == Rel.FATHER.value,
            primary == Rel.FOSTER_PARENT.value,
        ],
        [Rel.OTHER_CONTACT.value, Rel.FATHER.value, Rel.MOTHER.value, Rel.FOSTER_PARENT.value],
        Rel.GRANDPARENT_CAREGIVER.value,
    ).astype(object)

    child = np.concatenate([np.arange(n), np.flatnonzero(has_second)])
    order = np.argsort(child * 2 + np.repeat([0, 1], [n, int(has_second.sum())]), kind="stable")
    child = child[order]
    relationship = np.concatenate([primary, second[has_second]])[order]
    rank = np.concatenate([np.zeros(n, int), np.ones(int(has_second.sum()), int)])[order]
    ids = first_id + np.arange(len(child), dtype=np.int64)
    total = len(child)

    female = np.isin(relationship, [Rel.MOTHER.value]) | (
        ~np.isin(relationship, [Rel.FATHER.value]) & (rng.random(total) < 0.6)
    )
    group = kids.group[child]
    same_last = rng.random(total) < np.where(rank == 0, 0.85, 0.55)
    first = np.empty(total, dtype=object)
    own_last = np.empty(total, dtype=object)
    for g, name in enumerate(GROUP_NAMES):
        females, males, lasts = GROUPS[name]
        for mask, pool in (((group == g) & female, females), ((group == g) & ~female, males)):
            first[mask] = draw.pick(rng, pool, int(mask.sum()))
        mask = group == g
        own_last[mask] = draw.pick(rng, lasts, int(mask.sum()))
    last = np.where(same_last, kids.last_name[child], own_last).astype(object)

    area = np.array([AREA_CODES[p.state] for p in PROGRAMS], dtype=object)[kids.program[child]]
    number = rng.integers(0, 100, size=total)
    phone = draw.where(
        rng.random(total) < 0.9,
        np.array([f"{a}-555-01{k:02d}" for a, k in zip(area, number.tolist(), strict=True)]),
    )
    email = draw.where(
        rng.random(total) < 0.65,
        np.array(
            [
                f"{f.lower()}.{s.lower()}{k}@example.org"
                for f, s, k in zip(first.tolist(), last.tolist(), number.tolist(), strict=True)
            ],
            dtype=object,
        ),
    )
    table: Columns = {
        "id": ids,
        "child_id": kids.ids[child],
        "first_name": first,
        "last_name": last,
        "relationship": relationship,
        "phone": phone,
        "email": email,
    }
    primary_id = ids[rank == 0]
    contact_id = np.full(n, -1, dtype=np.int64)
    is_contact = relationship == Rel.OTHER_CONTACT.value
    contact_id[child[is_contact]] = ids[is_contact]
    return table, primary_id, contact_id


def with_relationship_dates(
    table: Columns, first_id: int, late: np.ndarray, became: np.ndarray
) -> Columns:
    """``table`` with ``relationship_start`` / ``relationship_end`` (empty: since before the
    record, still), where the guardians ``late`` became the child's guardian on ``became``
    (a guardianship that began after they signed a consent: not yet a parent when signing).
    Such a signer who is not a foster parent is recorded as a court-appointed guardian."""
    n = len(table["id"])
    start = np.full(n, np.datetime64("NaT", "D"))
    rows = np.asarray(late, dtype=np.int64) - first_id
    start[rows] = became
    relationship = table["relationship"].copy()
    relationship[rows] = np.where(
        relationship[rows] == Rel.FOSTER_PARENT.value, Rel.FOSTER_PARENT.value, Rel.GUARDIAN.value
    )
    return {
        **table,
        "relationship": relationship,
        "relationship_start": start,
        "relationship_end": np.full(n, np.datetime64("NaT", "D")),
    }


def tribal_affiliation(children: Columns, kids: Children) -> np.ndarray:
    """Each child's tribal affiliation as the family reports it: the (fictional) tribe of an
    AIAN program's children who are American Indian or Alaska Native; none otherwise."""
    tribe = np.array([TRIBES.get(p.code) for p in PROGRAMS], dtype=object)[kids.program]
    aian = children["race"] == Race.AMERICAN_INDIAN_ALASKA_NATIVE.value
    # numpy's stubs take a ``None`` third argument for the one-argument form (a tuple of
    # indices); with ``x`` and ``y`` given it is the elementwise choice, an array
    return cast(np.ndarray, np.where(aian, tribe, None)).astype(object)
