"""Agreement files: the demo ones load; every kind of mistake names its file and line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from privacy.agreements import (
    Agreement,
    LegalBasis,
    check_agreements,
    load_agreement,
    load_agreements,
)
from privacy.errors import AgreementError, AgreementProblem, PrivacyError

AGREEMENTS = Path(__file__).resolve().parents[2] / "config" / "agreements"
DEMO_RECIPIENTS = {
    "VT-AOE", "MO-DESE", "NM-ECECD", "VT-BSD", "MO-KCPS", "HHS-OHS", "UVM-CRC", "VT-HEALTH",
}  # fmt: skip

BASE = """\
# a test agreement
id: sample
recipient: VT-AOE
legal_basis: audit_evaluation
purpose: evaluate programs
effective: 2025-07-01
expires: 2028-06-30
last_reviewed: 2026-06-15
destruction: shredded after five years
record_categories: [identity, demographics, attendance]
parent_statements: carry
fields:
  child_local_id: keep
  birth_date: month
  sex: keep
  race: keep
  days_present: keep
"""


def write(folder: Path, text: str, name: str = "sample") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def line_of(text: str, marker: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line containing ``marker``."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if marker in line]
    return hits[occurrence - 1]


def problems_of(folder: Path, **kwargs: object) -> list[AgreementProblem]:
    return check_agreements(folder, **kwargs)[1]  # type: ignore[arg-type]


def test_the_base_agreement_is_valid(tmp_path: Path) -> None:
    write(tmp_path, BASE)
    a = load_agreement(tmp_path / "sample.yaml")
    assert a.legal_basis is LegalBasis.AUDIT_EVALUATION
    assert list(a.fields) == ["child_local_id", "birth_date", "sex", "race", "days_present"]
    assert a.fields["birth_date"].name == "month"


# (case id, text to replace, replacement, marker of the line blamed, occurrence, message part)
CASES = [
    ("typo_key", "destruction:", "destrucion:", "destrucion", 1,
     "unknown key 'destrucion'; did you mean 'destruction'?"),
    ("unknown_catalog_field", "  sex: keep", "  gender: keep", "gender", 1,
     "unknown field 'gender'"),
    ("misspelled_catalog_field", "  birth_date: month", "  birthdate: month", "birthdate", 1,
     "unknown field 'birthdate'; did you mean 'birth_date'?"),
    ("unknown_transform", "  sex: keep", "  sex: hash", "sex:", 1, "unknown transform 'hash'"),
    ("transform_does_not_fit_kind", "  birth_date: month", "  birth_date: zip3", "birth_date", 1,
     "zip3 does not fit birth_date"),
    ("bad_bucket_params", "  days_present: keep", "  days_present: {bucket: {bins: [9, 3]}}",
     "days_present", 1, "strictly ascending"),
    ("unknown_param", "  days_present: keep",
     "  days_present: {bucket: {bins: [0, 5], width: 2}}", "days_present", 1,
     "unknown parameter width"),
    ("two_transforms_for_one_field", "  sex: keep", "  sex: {keep: null, drop: null}", "sex:", 1,
     "write a transform as a name"),
    ("duplicate_field_key", "  race: keep", "  race: keep\n  sex: drop", "sex: drop", 1,
     "duplicate key 'sex' (first at line 15)"),
    ("duplicate_top_level_key", "parent_statements: carry",
     "parent_statements: carry\npurpose: again", "purpose: again", 1, "duplicate key 'purpose'"),
    ("missing_destruction_audit", "destruction: shredded after five years\n", "",
     "legal_basis", 1, "needs destruction terms (45 CFR 1303.22(c)(2))"),
    ("category_not_listed", "[identity, demographics, attendance]", "[identity, demographics]",
     "days_present", 1, "days_present belongs to the attendance records"),
    ("expiry_before_effective", "expires: 2028-06-30", "expires: 2025-06-30", "expires", 1,
     "expires before it takes effect"),
    ("missing_required_key", "purpose: evaluate programs\n", "", "id:", 1,
     "missing required key 'purpose'"),
    ("invalid_date", "effective: 2025-07-01", "effective: 2025-13-01", "effective", 1,
     "a bad date or an unsafe tag"),
    ("unsafe_tag", "purpose: evaluate programs", "purpose: !!python/name:os.system", "purpose", 1,
     "a bad date or an unsafe tag"),
    ("merge_key", "fields:\n", "extra: &x {a: 1}\n<<: *x\nfields:\n", "<<", 1, "merge keys"),
    ("alias", "fields:\n", "extra: &x {a: 1}\nmore: *x\nfields:\n", "more:", 1,
     "anchors and aliases"),
    ("unknown_legal_basis", "legal_basis: audit_evaluation", "legal_basis: hunch", "legal_basis",
     1, "legal_basis: Input should be"),
    ("unknown_record_category", "[identity, demographics, attendance]",
     "[identity, demographics, attendance, health]", "record_categories", 1,
     "record_categories.3"),
    ("negative_notice_days", "parent_statements: carry",
     "parent_statements: carry\nnotice_days: -1", "notice_days", 1, "greater than or equal to 0"),
    ("zero_cell_size", "parent_statements: carry", "parent_statements: carry\nmin_cell_size: 0",
     "min_cell_size", 1, "greater than or equal to 1"),
    ("disability_without_idea_exception", "  days_present: keep",
     "  days_present: keep\n  disability: keep", "disability", 1, "needs idea_exception"),
    ("aggregate_grouped_by_a_child_id", "parent_statements: carry",
     "parent_statements: carry\noutput: aggregate", "child_local_id", 1,
     "cannot group by child_local_id"),
    ("id_not_the_file_name", "id: sample", "id: other", "id:", 1,
     "the id must be the file name without .yaml (sample)"),
    ("suspension_ends_before_it_starts", "parent_statements: carry",
     "parent_statements: carry\nsuspensions:\n  - start: 2026-03-01\n    end: 2026-02-01\n"
     "    reason: late", "start: 2026-03-01", 1, "cannot end before it starts"),
    ("typo_in_a_suspension", "parent_statements: carry",
     "parent_statements: carry\nsuspensions:\n  - start: 2026-03-01\n    reasn: late",
     "reasn", 1, "unknown key 'reasn'; did you mean 'reason'?"),
    ("no_field_leaves", "  child_local_id: keep\n  birth_date: month\n  sex: keep\n"
     "  race: keep\n  days_present: keep\n", "  sex: drop\n", "fields:", 1, "no field leaves"),
    ("fields_not_a_mapping", "fields:\n", "fields: [sex]\nx:\n", "fields:", 1, "fields"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "marker", "occurrence", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_each_mistake_names_its_line(
    tmp_path: Path, old: str, new: str, marker: str, occurrence: int, message: str | None
) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    write(tmp_path, text)
    problems = problems_of(tmp_path)
    assert problems, "the mistake went unnoticed"
    expected = line_of(text, marker, occurrence)
    blamed = [p for p in problems if p.line == expected]
    assert blamed, f"no problem on line {expected}: {[str(p) for p in problems]}"
    if message is not None:
        assert any(message in p.message for p in blamed), [str(p) for p in problems]
    assert all(p.file == tmp_path / "sample.yaml" for p in problems)


def test_study_without_destruction_is_refused(tmp_path: Path) -> None:
    text = BASE.replace("legal_basis: audit_evaluation", "legal_basis: study").replace(
        "destruction: shredded after five years", "destruction: '   '"
    )
    write(tmp_path, text)
    (problem,) = problems_of(tmp_path)
    assert problem.line == line_of(text, "legal_basis")
    assert "needs destruction terms (45 CFR 1303.22(c)(3))" in problem.message


def test_notice_agreement_may_send_identity_and_enrollment_only(tmp_path: Path) -> None:
    text = (
        BASE.replace("legal_basis: audit_evaluation", "legal_basis: school_enrollment_notice")
        .replace("[identity, demographics, attendance]", "[identity, enrollment]")
        .replace("  race: keep\n", "  race: keep\n  entry_date: keep\n")
    )
    write(tmp_path, text)
    problems = problems_of(tmp_path)
    blamed = {p.line for p in problems if "school_enrollment_notice" in p.message}
    assert blamed == {line_of(text, "sex:"), line_of(text, "race:"), line_of(text, "days_present")}
    assert line_of(text, "entry_date") not in {p.line for p in problems}

    categories = text.replace("[identity, enrollment]", "[identity, enrollment, services]")
    write(tmp_path, categories)
    assert any(
        p.line == line_of(categories, "record_categories")
        and "identity and enrollment" in p.message
        for p in problems_of(tmp_path)
    )


def test_unknown_recipient_is_refused_only_when_a_registry_is_given(tmp_path: Path) -> None:
    text = BASE.replace("recipient: VT-AOE", "recipient: VT-AOX")
    write(tmp_path, text)
    assert problems_of(tmp_path) == []
    (problem,) = problems_of(tmp_path, recipients=DEMO_RECIPIENTS)
    assert problem.line == line_of(text, "recipient:")
    assert "unknown recipient 'VT-AOX'" in problem.message


def test_all_problems_of_all_files_are_collected(tmp_path: Path) -> None:
    write(tmp_path, BASE.replace("destruction:", "destrucion:").replace("sex: keep", "sex: hash"))
    write(tmp_path, BASE.replace("id: sample", "id: second"), name="second")
    write(
        tmp_path,
        BASE.replace("id: sample", "id: third").replace("  race: keep", "  rase: keep"),
        name="third",
    )
    write(tmp_path, "a: [1\n", name="broken")
    write(tmp_path, "", name="empty")
    write(tmp_path, "- 1\n", name="listing")
    with pytest.raises(AgreementError) as caught:
        load_agreements(tmp_path)
    error = caught.value
    assert isinstance(error, PrivacyError)
    by_file = {p.file.stem for p in error.problems}
    assert by_file == {"sample", "third", "broken", "empty", "listing"}
    sample = {p.message.split(" (")[0] for p in error.problems if p.file.stem == "sample"}
    assert sample == {
        "unknown key 'destrucion'; did you mean 'destruction'?",
        "sex: unknown transform 'hash'",
        "the audit_evaluation basis needs destruction terms",
    }
    assert error.file == error.problems[0].file and error.line == error.problems[0].line
    assert error.message == error.problems[0].message
    assert f"{error.problems[0].file}:{error.problems[0].line}: " in str(error)
    broken = next(p for p in error.problems if p.file.stem == "broken")
    assert broken.line == 2 and "not valid YAML" in broken.message
    empty = next(p for p in error.problems if p.file.stem == "empty")
    assert empty.message == "the file is empty"
    valid, _ = check_agreements(tmp_path)
    assert set(valid) == {"second"}


def test_missing_folder_and_second_file_for_an_id(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path / "nowhere")
    assert "no such folder" in problem.message and problem.line is None
    write(tmp_path, BASE)
    (tmp_path / "sample.yml").write_text(BASE)
    (problem,) = problems_of(tmp_path)
    assert problem.file.name == "sample.yml" and "a second file" in problem.message


def test_load_agreement_raises_with_every_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE.replace("expires: 2028-06-30", "expires: 2020-01-01").replace(
            "sex: keep", "sex: zip3"
        ),
    )
    with pytest.raises(AgreementError) as caught:
        load_agreement(path)
    assert [p.line for p in caught.value.problems] == [7, 15]


def test_messages_do_not_echo_values(tmp_path: Path) -> None:
    write(tmp_path, BASE.replace("effective: 2025-07-01", "effective: Jane Doe 2019"))
    (problem,) = problems_of(tmp_path)
    assert "Jane" not in problem.message and problem.line == 6


def test_the_model_itself_fails_closed_without_the_loader() -> None:
    data = load_agreement(AGREEMENTS / "vt-aoe-ecids.yaml").model_dump()
    Agreement.model_validate(data)
    with pytest.raises(ValidationError, match="zip3 does not fit birth_date"):
        Agreement.model_validate({**data, "fields": {"birth_date": "zip3"}})
    with pytest.raises(ValidationError, match="needs destruction terms"):
        Agreement.model_validate({**data, "destruction": None})


def test_demo_agreements_all_load_against_the_demo_recipients() -> None:
    loaded = load_agreements(AGREEMENTS, recipients=DEMO_RECIPIENTS)
    assert set(loaded) == {
        "vt-aoe-ecids", "mo-dese-consent", "nm-ececd-aggregate", "vt-bsd-enrollment",
        "uvm-crc-study",
    }  # fmt: skip
    assert {a.recipient for a in loaded.values()} == {
        "VT-AOE", "MO-DESE", "NM-ECECD", "VT-BSD", "UVM-CRC",
    }  # fmt: skip


def test_demo_agreements_say_what_the_contract_says() -> None:
    a = load_agreements(AGREEMENTS)
    vt = a["vt-aoe-ecids"]
    assert vt.legal_basis is LegalBasis.AUDIT_EVALUATION and vt.parent_statements == "carry"
    named = ("child_local_id", "state_student_id", "first_name", "last_name", "birth_date")
    assert {n: vt.fields[n].name for n in (*named, "address_zip")} == {
        "child_local_id": "keep", "state_student_id": "keep", "first_name": "keep",
        "last_name": "keep", "birth_date": "keep", "address_zip": "zip3",
    }  # fmt: skip
    mo = a["mo-dese-consent"]
    assert mo.legal_basis is LegalBasis.CONSENT and {"disability", "iep"} <= set(mo.leaving())
    nm = a["nm-ececd-aggregate"]
    assert nm.output == "aggregate" and nm.min_cell_size == 10
    assert nm.fields["birth_date"].name == "bucket"
    bsd = a["vt-bsd-enrollment"]
    assert bsd.legal_basis is LegalBasis.SCHOOL_ENROLLMENT_NOTICE and bsd.notice_days == 10
    assert set(bsd.record_categories) == {"identity", "enrollment"}
    uvm = a["uvm-crc-study"]
    assert uvm.fields["child_local_id"].name == "pseudonymize"
    assert uvm.fields["birth_date"].name == "month" and uvm.fields["address_zip"].name == "zip3"
    demo_date = dt.date(2026, 11, 27)
    for agreement in a.values():
        assert agreement.in_force(demo_date)
        assert agreement.last_reviewed <= demo_date <= agreement.review_due
        assert agreement.suspension_on(demo_date) is None


@pytest.mark.parametrize(
    ("reviewed", "due"),
    [
        (dt.date(2025, 11, 28), dt.date(2026, 11, 28)),
        (dt.date(2024, 2, 29), dt.date(2025, 2, 28)),
    ],
    ids=["a_year_later", "feb29_review_due_feb28"],
)
def test_review_due(reviewed: dt.date, due: dt.date) -> None:
    a = load_agreement(AGREEMENTS / "vt-aoe-ecids.yaml").model_copy(
        update={"last_reviewed": reviewed}
    )
    assert a.review_due == due


def test_in_force_and_suspensions_include_both_ends() -> None:
    a = load_agreement(AGREEMENTS / "uvm-crc-study.yaml")
    assert a.in_force(a.effective) and a.in_force(a.expires)  # type: ignore[arg-type]
    assert not a.in_force(a.effective - dt.timedelta(days=1))
    assert not a.in_force(a.expires + dt.timedelta(days=1))  # type: ignore[operator]
    assert a.suspension_on(dt.date(2026, 3, 1)) is not None
    assert a.suspension_on(dt.date(2026, 4, 15)) is not None
    assert a.suspension_on(dt.date(2026, 4, 16)) is None


def test_every_basis_has_a_citation() -> None:
    assert {b: b.citation for b in LegalBasis} == {
        LegalBasis.CONSENT: "45 CFR 1303.22(a)",
        LegalBasis.SCHOOL_ENROLLMENT_NOTICE: "45 CFR 1303.22(b)",
        LegalBasis.AUDIT_EVALUATION: "45 CFR 1303.22(c)(2)",
        LegalBasis.STUDY: "45 CFR 1303.22(c)(3)",
    }


def test_alias_bombs_are_refused_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    write(tmp_path, "\n".join(lines) + "\n")
    problems = problems_of(tmp_path)
    assert any("anchors and aliases" in p.message for p in problems)
