"""The fixed part of the demo world: programs, sites, recipients and participation events.

Everything here is fictional. Program names and grant numbers are made up (grant numbers carry
a ``9`` series that no real grant uses); ZIP codes are real ones of the program's state so maps
and ``zip3`` generalization look right.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from schemas.codes import (
    EntityLevel,
    OptInScope,
    ParticipationAction,
    ProgramType,
    RecipientCategory,
)

DEMO_DATE = dt.date(2026, 11, 27)
"""The anchor date: consent and notice dates sit around it so a run on it shows every rule."""

PROGRAM_YEAR_START = dt.date(2026, 8, 24)
PRIOR_YEAR_START = dt.date(2025, 8, 25)
PRIOR_YEAR_END = dt.date(2026, 6, 5)
HOLIDAYS = ("2026-09-07", "2026-10-12", "2026-11-11", "2026-11-26", "2026-11-27")
DECIDED_BY = "demo seed"
SOURCE = "demo seed"


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """A site of a demo program."""

    code: str
    name: str
    city: str
    zip: str


@dataclass(frozen=True, slots=True)
class ProgramSpec:
    """A demo program; ``share`` is its part of the children, ``ages`` its age range in days."""

    code: str
    grant_number: str
    name: str
    state: str
    program_type: ProgramType
    is_aian: bool
    share: float
    ages: tuple[int, int]
    sites: tuple[SiteSpec, ...]
    area: tuple[tuple[str, str], ...]  # (city, zip) where some families live


_EHS_AGES = (42, 3 * 365 - 1)
_HS_AGES = (3 * 365 + 5, 5 * 365 + 240)
_ALL_AGES = (42, 5 * 365 + 240)

PROGRAMS: tuple[ProgramSpec, ...] = (
    ProgramSpec(
        "VT-HS-01", "01CH900001", "Winooski River Head Start", "VT",
        ProgramType.HEAD_START, False, 0.20, _HS_AGES,
        (SiteSpec("S01", "North Avenue Center", "Burlington", "05408"),
         SiteSpec("S02", "Winooski Falls Center", "Winooski", "05404"),
         # A site coded by its street, as some programs do; "Hill" is also a common surname
         # in the demo, so the output gate must not take the code for a child's name.
         SiteSpec("Hill", "Hill Street Center", "South Burlington", "05403")),
        (("Burlington", "05401"), ("Essex Junction", "05452"), ("Colchester", "05446")),
    ),
    ProgramSpec(
        "VT-EHS-02", "01HP900002", "Northern Vermont Early Head Start", "VT",
        ProgramType.EARLY_HEAD_START, False, 0.12, _EHS_AGES,
        (SiteSpec("S01", "Barre Family Center", "Barre", "05641"),
         SiteSpec("S02", "Montpelier Infant Toddler Center", "Montpelier", "05602"),
         SiteSpec("S03", "Rutland Home Visiting", "Rutland", "05701"),
         SiteSpec("S04", "St. Albans Center", "St. Albans", "05478")),
        (("Northfield", "05663"), ("Waterbury", "05676"), ("Swanton", "05488")),
    ),
    ProgramSpec(
        "MO-HS-03", "07CH900003", "Heartland Head Start", "MO",
        ProgramType.HEAD_START, False, 0.25, _HS_AGES,
        (SiteSpec("S01", "Troost Avenue Center", "Kansas City", "64110"),
         SiteSpec("S02", "Westport Center", "Kansas City", "64111"),
         SiteSpec("S03", "Independence Avenue Center", "Kansas City", "64124"),
         SiteSpec("S04", "Swope Park Center", "Kansas City", "64132")),
        (("Kansas City", "64127"), ("Kansas City", "64130"), ("Raytown", "64133")),
    ),
    ProgramSpec(
        "MO-MSHS-04", "90CM900004", "Missouri Valley Migrant and Seasonal Head Start", "MO",
        ProgramType.MIGRANT_SEASONAL, False, 0.10, _ALL_AGES,
        (SiteSpec("S01", "Sedalia Seasonal Center", "Sedalia", "65301"),
         SiteSpec("S02", "Bootheel Seasonal Center", "Kennett", "63857")),
        (("Marshall", "65340"), ("Malden", "63863"), ("Sikeston", "63801")),
    ),
    ProgramSpec(
        "NM-HS-05", "06CH900005", "Rio Grande Head Start", "NM",
        ProgramType.HEAD_START, False, 0.18, _HS_AGES,
        (SiteSpec("S01", "Barelas Center", "Albuquerque", "87102"),
         SiteSpec("S02", "South Valley Center", "Albuquerque", "87105"),
         SiteSpec("S03", "Mesilla Valley Center", "Las Cruces", "88001")),
        (("Albuquerque", "87121"), ("Los Lunas", "87031"), ("Las Cruces", "88005")),
    ),
    ProgramSpec(
        "NM-AIAN-06", "90CI900006", "Canyon Mesa Tribal Head Start", "NM",
        ProgramType.AIAN, True, 0.07, _ALL_AGES,
        (SiteSpec("S01", "Mesa Center", "Gallup", "87301"),
         SiteSpec("S02", "River Bend Center", "Shiprock", "87420")),
        (("Crownpoint", "87313"), ("Tohatchi", "87325")),
    ),
    ProgramSpec(
        "NM-AIAN-07", "90CI900007", "Red Rock Pueblo Head Start", "NM",
        ProgramType.AIAN, True, 0.08, _ALL_AGES,
        (SiteSpec("S01", "Pueblo Center", "Zuni", "87327"),
         SiteSpec("S02", "Canyon Home Visiting", "Ramah", "87321")),
        (("Zuni", "87327"), ("Gallup", "87305")),
    ),
)  # fmt: skip
PROGRAM_CODES: tuple[str, ...] = tuple(p.code for p in PROGRAMS)
TRIBES = {
    "NM-AIAN-06": "Canyon Mesa Nation (fictional)",
    "NM-AIAN-07": "Red Rock Pueblo (fictional)",
}
"""The tribe of each AIAN demo program's children (fictional, like the programs)."""


@dataclass(frozen=True, slots=True)
class RecipientSpec:
    """A demo recipient."""

    code: str
    name: str
    category: RecipientCategory
    entity_level: EntityLevel
    state: str | None


_R = RecipientCategory
_L = EntityLevel
RECIPIENTS: tuple[RecipientSpec, ...] = (
    RecipientSpec("VT-AOE", "Vermont Agency of Education", _R.STATE_EDUCATION_DATA_SYSTEM,
                  _L.STATE, "VT"),
    RecipientSpec("MO-DESE", "Missouri Department of Elementary and Secondary Education",
                  _R.STATE_EDUCATION_DATA_SYSTEM, _L.STATE, "MO"),
    RecipientSpec("NM-ECECD", "New Mexico Early Childhood Education and Care Department",
                  _R.STATE_EDUCATION_DATA_SYSTEM, _L.STATE, "NM"),
    RecipientSpec("VT-BSD", "Burlington School District", _R.LOCAL_EDUCATION_AGENCY,
                  _L.LOCAL, "VT"),
    RecipientSpec("MO-KCPS", "Kansas City Public Schools", _R.LOCAL_EDUCATION_AGENCY,
                  _L.LOCAL, "MO"),
    RecipientSpec("HHS-OHS", "Office of Head Start (HHS)", _R.FEDERAL_AGENCY, _L.FEDERAL, None),
    RecipientSpec("UVM-CRC", "University of Vermont Child Research Center (demo study)",
                  _R.RESEARCHER, _L.ACTS_FOR_PROGRAM, "VT"),
    RecipientSpec("VT-HEALTH", "Vermont Department of Health, district office", _R.HEALTH,
                  _L.LOCAL, "VT"),
)  # fmt: skip
RECIPIENT_CODES: tuple[str, ...] = tuple(r.code for r in RECIPIENTS)

STATE_SYSTEM = {"VT": "VT-AOE", "MO": "MO-DESE", "NM": "NM-ECECD"}
"""Each state's education data system."""
SCHOOL_DISTRICT = {"VT": "VT-BSD", "MO": "MO-KCPS"}
"""Where children aged four and up get enrollment notices."""
OTHER_RECIPIENT = {"VT": "VT-HEALTH", "MO": "MO-KCPS", "NM": "HHS-OHS"}
"""The recipient of the 'consent for another recipient' scenario."""


@dataclass(frozen=True, slots=True)
class EventSpec:
    """A participation event of the demo registry."""

    program: str
    recipient: str | None
    action: ParticipationAction
    effective: dt.date
    authority: str | None = None
    scope: OptInScope | None = None
    excluded_fields: tuple[str, ...] = ()
    reason: str | None = None
    recorded_by: str | None = DECIDED_BY
    unchecked: bool = False
    """Written as before schema 0004 allowed (an import, SQL): not checked by the database."""


_JOINED = dt.date(2025, 7, 1)
_P = ParticipationAction
EVENTS: tuple[EventSpec, ...] = (
    EventSpec("VT-HS-01", "VT-AOE", _P.PARTICIPATE, _JOINED, reason="state data agreement"),
    EventSpec("VT-HS-01", "VT-BSD", _P.PARTICIPATE, _JOINED, reason="kindergarten transition"),
    EventSpec("VT-HS-01", "UVM-CRC", _P.PARTICIPATE, _JOINED, reason="outcomes study"),
    EventSpec("VT-EHS-02", "VT-AOE", _P.PARTICIPATE, _JOINED, reason="state data agreement"),
    EventSpec("MO-HS-03", "MO-DESE", _P.PARTICIPATE, _JOINED, reason="state data agreement"),
    EventSpec("MO-HS-03", "MO-KCPS", _P.PARTICIPATE, _JOINED, reason="kindergarten transition"),
    EventSpec("NM-HS-05", "NM-ECECD", _P.PARTICIPATE, _JOINED, reason="state data agreement"),
    EventSpec("NM-AIAN-06", "NM-ECECD", _P.PARTICIPATE, _JOINED,
              reason="registered; no opt-in decision by the tribe"),
    EventSpec("NM-AIAN-07", "NM-ECECD", _P.PARTICIPATE, _JOINED, reason="state data agreement"),
    EventSpec("NM-AIAN-07", None, _P.OPT_IN, dt.date(2026, 4, 15),
              authority="Tribal Council Resolution 2026-14", scope=OptInScope.AGGREGATE,
              excluded_fields=("race",), reason="aggregate counts only, race excluded"),
    # Leak class 3: an enrollment-system import wrote an opt-in with no authority and no
    # recorder before the registry required them; the tribe never decided. It must not switch
    # sharing on: reason aian_opt_in_incomplete.
    EventSpec("NM-AIAN-06", None, _P.OPT_IN, dt.date(2026, 9, 1), scope=OptInScope.RECORD,
              reason="imported from the enrollment system", recorded_by=None, unchecked=True),
)  # fmt: skip
