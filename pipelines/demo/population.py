"""The children and their guardians, drawn per program with plausible distributions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipelines.demo import draw
from pipelines.demo.draw import DAY, Columns
from pipelines.demo.names import GROUP_NAMES, GROUPS, LANGUAGE_GROUP, STREETS
from pipelines.demo.names import STREET_SUFFIXES as SUFFIXES
from pipelines.demo.world import DEMO_DATE, PROGRAMS, SOURCE, ProgramSpec
from schemas.codes import Ethnicity, IncomeBand, Race

RACES = (
    Race.WHITE,
    Race.BLACK,
    Race.ASIAN,
    Race.AMERICAN_INDIAN_ALASKA_NATIVE,
    Race.NATIVE_HAWAIIAN_PACIFIC_ISLANDER,
    Race.TWO_OR_MORE,
    Race.UNKNOWN,
)
# Per program: race weights (RACES order), Hispanic share, dual-language share, languages.
PROFILES = {
    "VT-HS-01": (
        (78, 7, 5, 1, 0, 7, 2),
        0.07,
        0.15,
        {"spa": 25, "nep": 20, "swa": 15, "som": 15, "ara": 15, "vie": 10},
    ),
    "VT-EHS-02": (
        (80, 6, 4, 1, 0, 7, 2),
        0.06,
        0.15,
        {"spa": 30, "nep": 20, "swa": 15, "som": 10, "ara": 15, "vie": 10},
    ),
    "MO-HS-03": ((45, 42, 2, 1, 1, 7, 2), 0.12, 0.20, {"spa": 70, "vie": 12, "bos": 8, "ara": 10}),
    "MO-MSHS-04": ((88, 2, 1, 4, 0, 3, 2), 0.92, 0.85, {"spa": 95, "myn": 5}),
    "NM-HS-05": ((72, 3, 1, 12, 0, 8, 4), 0.62, 0.45, {"spa": 95, "vie": 5}),
    "NM-AIAN-06": ((3, 0, 0, 90, 0, 6, 1), 0.05, 0.30, {"nav": 80, "spa": 20}),
    "NM-AIAN-07": ((3, 0, 0, 90, 0, 6, 1), 0.05, 0.30, {"zun": 70, "spa": 30}),
}
ELIGIBILITY = ("income", "public_assistance", "income_101_130", "over_income")
RATES = {"disability": 0.13, "homeless": 0.05, "foster_care": 0.03, "state_student_id": 0.70}


@dataclass(frozen=True, slots=True)
class Children:
    """Per-child facts the later tables draw on (row i is child ``ids[i]``)."""

    ids: np.ndarray
    program: np.ndarray  # index into PROGRAMS
    site: np.ndarray  # index into the program's sites
    birth: np.ndarray  # datetime64[D]
    age: np.ndarray  # completed years on DEMO_DATE
    foster: np.ndarray
    homeless: np.ndarray
    eligibility: np.ndarray  # EligibilityCategory values
    group: np.ndarray  # index into GROUP_NAMES
    last_name: np.ndarray


def children(
    rng: np.random.Generator, n: int, first_id: int, program_ids: np.ndarray
) -> tuple[Columns, Children]:
    """The ``children`` table and the per-child facts, ``n`` children over the programs."""
    shares = [p.share for p in PROGRAMS]
    program = np.repeat(np.arange(len(PROGRAMS)), draw.quotas(n, shares, at_least_one=True))
    ids = first_id + np.arange(n, dtype=np.int64)
    starts = np.searchsorted(program, program, side="left")
    local = [f"C{k:06d}" for k in (np.arange(n) - starts + 1).tolist()]
    lo = np.array([p.ages[0] for p in PROGRAMS])[program]
    hi = np.array([p.ages[1] for p in PROGRAMS])[program]
    birth = draw.day(DEMO_DATE) - rng.integers(lo, hi + 1) * DAY
    age = draw.completed_years(birth, DEMO_DATE)

    people = _demographics(rng, program)
    female = (people["sex"] == "female") | (
        (people["sex"] == "not_selected") & (rng.random(n) < 0.5)
    )
    group = _name_group(people)
    first = _names(rng, group, female, first=True)
    middle = draw.where(rng.random(n) < 0.6, _names(rng, group, female, first=True))
    last = _names(rng, group, female, first=False)

    has_ssid = rng.random(n) < RATES["state_student_id"]
    ssid_numbers = (np.arange(n, dtype=np.int64) * 7_919 + int(rng.integers(0, 10**8))) % 10**9
    ssid = draw.where(has_ssid, np.array([f"9{k:09d}" for k in ssid_numbers.tolist()], object))

    site = (rng.random(n) * np.array([len(p.sites) for p in PROGRAMS])[program]).astype(int)
    services = _services(rng, n)
    address = _address(rng, program, site, services["homeless"])
    disability = services.pop("disability")
    table: Columns = {
        "id": ids,
        "program_id": np.asarray(program_ids)[program],
        "local_id": np.array(local, dtype=object),
        "state_student_id": ssid,
        "first_name": first,
        "middle_name": middle,
        "last_name": last,
        "birth_date": birth,
        "sex": people["sex"],
        "race": people["race"],
        "ethnicity": people["ethnicity"],
        "home_language": people["home_language"],
        **address,
        "disability": disability,
        "iep": disability & (age >= 3),
        "ifsp": disability & (age < 3),
        "dual_language_learner": people["dual_language_learner"],
        "homeless": services["homeless"],
        "foster_care": services["foster_care"],
        "income_band": services["income_band"],
        "source": np.full(n, SOURCE, dtype=object),
    }
    facts = Children(
        ids, program, site, birth, age, services["foster_care"], services["homeless"],
        services["eligibility"], group, last,
    )  # fmt: skip
    return table, facts


def _by_program(
    program: np.ndarray, values: Callable[[ProgramSpec, int], np.ndarray]
) -> np.ndarray:
    """An object array filled program by program with ``values(spec, how_many)``."""
    out = np.empty(len(program), dtype=object)
    for index, spec in enumerate(PROGRAMS):
        mask = program == index
        if mask.any():
            out[mask] = values(spec, int(mask.sum()))
    return out


def _demographics(rng: np.random.Generator, program: np.ndarray) -> Columns:
    """Sex, race, ethnicity and home language by the program's profile; Spanish (or Mayan)
    speakers are Hispanic."""
    n = len(program)
    sexes = np.array(["female", "male", "not_selected"], dtype=object)
    races = np.array([r.value for r in RACES], dtype=object)
    race = _by_program(program, lambda p, k: races[draw.choose(rng, k, PROFILES[p.code][0])])
    dll = rng.random(n) < np.array([PROFILES[p.code][2] for p in PROGRAMS])[program]

    def spoken(spec: ProgramSpec, k: int) -> np.ndarray:
        languages = PROFILES[spec.code][3]
        return np.array(list(languages), dtype=object)[
            draw.choose(rng, k, list(languages.values()))
        ]

    language = np.where(dll, _by_program(program, spoken), "eng").astype(object)
    hispanic_share = np.array([PROFILES[p.code][1] for p in PROGRAMS])[program]
    hispanic = (rng.random(n) < hispanic_share) | np.isin(language, ["spa", "myn"])
    ethnicity = np.where(hispanic, Ethnicity.HISPANIC.value, Ethnicity.NOT_HISPANIC.value)
    ethnicity = np.where(rng.random(n) < 0.02, Ethnicity.UNKNOWN.value, ethnicity)
    return {
        "sex": sexes[draw.choose(rng, n, (49, 50, 1))],
        "race": race,
        "ethnicity": ethnicity.astype(object),
        "home_language": language,
        "dual_language_learner": dll,
    }


def _name_group(people: Columns) -> np.ndarray:
    """The name list a child's names come from: by home language, else ethnicity or race."""
    group_of = {name: i for i, name in enumerate(GROUP_NAMES)}
    hispanic = people["ethnicity"] == Ethnicity.HISPANIC.value
    group = np.where(hispanic, group_of["hispanic"], group_of["general"])
    aian = people["race"] == Race.AMERICAN_INDIAN_ALASKA_NATIVE.value
    group = np.where(aian, group_of["aian"], group)
    for code, name in LANGUAGE_GROUP.items():
        group = np.where(people["home_language"] == code, group_of[name], group)
    return group


def _names(
    rng: np.random.Generator, group: np.ndarray, female: np.ndarray, *, first: bool
) -> np.ndarray:
    """A first name (by sex) or a last name per row, from the row's name group."""
    out = np.empty(len(group), dtype=object)
    for g, name in enumerate(GROUP_NAMES):
        females, males, lasts = GROUPS[name]
        parts = ((female, females), (~female, males)) if first else ((True, lasts),)
        for sex_mask, pool in parts:
            mask = (group == g) & sex_mask
            if mask.any():
                out[mask] = draw.pick(rng, pool, int(mask.sum()))
    return out


def _services(rng: np.random.Generator, n: int) -> Columns:
    """Disability, foster care, homelessness (exclusive), eligibility and income band."""
    foster = rng.random(n) < RATES["foster_care"]
    homeless = ~foster & (rng.random(n) < RATES["homeless"] / (1 - RATES["foster_care"]))
    disability = rng.random(n) < RATES["disability"]
    eligibility = np.array(ELIGIBILITY, dtype=object)[draw.choose(rng, n, (58, 24, 9, 9))]
    eligibility = np.where(homeless, "homeless", eligibility)
    eligibility = np.where(foster, "foster_care", eligibility).astype(object)
    low_income = np.isin(eligibility, ["income", "public_assistance"]) & (rng.random(n) < 0.95)
    band = np.select(
        [eligibility == "income_101_130", eligibility == "over_income", low_income],
        [IncomeBand.FROM_100_TO_130.value, IncomeBand.ABOVE_130.value, IncomeBand.BELOW_100.value],
        IncomeBand.UNKNOWN.value,
    ).astype(object)
    return {
        "disability": disability,
        "foster_care": foster,
        "homeless": homeless,
        "eligibility": eligibility,
        "income_band": band,
    }


def _address(
    rng: np.random.Generator, program: np.ndarray, site: np.ndarray, homeless: np.ndarray
) -> Columns:
    """Street, city, state, ZIP: most families live near their site, the others elsewhere in
    the program's area; half of the homeless families have no street address."""
    n = len(program)
    numbers = rng.integers(1, 9_800, size=n).tolist()
    names, suffixes = draw.pick(rng, STREETS, n).tolist(), draw.pick(rng, SUFFIXES, n).tolist()
    street = np.array(
        [f"{a} {b} {c}" for a, b, c in zip(numbers, names, suffixes, strict=True)], dtype=object
    )
    near, pick = rng.random(n) < 0.75, rng.integers(0, 1_000, size=n)
    city, zip_ = np.empty(n, dtype=object), np.empty(n, dtype=object)
    for index, spec in enumerate(PROGRAMS):
        mask = program == index
        at_site = np.array([(s.city, s.zip) for s in spec.sites], dtype=object)[site[mask]]
        area = np.array(spec.area, dtype=object)[pick[mask] % len(spec.area)]
        chosen = np.where(near[mask][:, None], at_site, area)
        city[mask], zip_[mask] = chosen[:, 0], chosen[:, 1]
    return {
        "address_street": draw.where(~(homeless & (rng.random(n) < 0.5)), street),
        "address_city": city,
        "address_state": np.array([p.state for p in PROGRAMS], dtype=object)[program],
        "address_zip": zip_,
    }
