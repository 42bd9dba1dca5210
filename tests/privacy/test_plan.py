"""compile_plan and FieldPlan: fail closed while compiling, exactly the plan's columns out."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy.agreements import Agreement, TransformSpec, load_agreements
from privacy.errors import MissingKeyError, TransformError
from privacy.fields import CATALOG, Kind
from privacy.keys import EnvKeyProvider, RecipientKey
from privacy.transforms import PSEUDONYM_PATTERN, TRANSFORMS, compile_plan
from schemas.codes import RecordCategory

RUN = dt.date(2026, 11, 27)
AGREEMENTS = Path(__file__).resolve().parents[2] / "config" / "agreements"
KEY = RecipientKey("test1", bytes(range(32)))
SAMPLE: dict[Kind, Any] = {
    Kind.TEXT: "Text",
    Kind.IDENTIFIER: "ID-1",
    Kind.CODE: "code",
    Kind.DATE: dt.date(2022, 5, 1),
    Kind.FLAG: True,
    Kind.COUNT: 17,
    Kind.ZIP: "05401-1234",
}


class Keys:
    """A provider holding one key per recipient; counts how often it was asked."""

    def __init__(self, keys: dict[str, RecipientKey] | None = None) -> None:
        self.keys = keys if keys is not None else {"VT-AOE": KEY}
        self.asked = 0

    def key(self, recipient_code: str) -> RecipientKey:
        self.asked += 1
        if recipient_code not in self.keys:
            raise MissingKeyError(recipient_code, ["test keys"])
        return self.keys[recipient_code]


def extract(rows: int = 3) -> pd.DataFrame:
    """An extract frame: ``child_id`` plus every catalog field, one row per child."""
    data: dict[str, list] = {"child_id": list(range(1, rows + 1))}
    for name, f in CATALOG.items():
        data[name] = [SAMPLE[f.kind]] * rows
    return pd.DataFrame(data)


def agreement(fields: dict[str, Any], **overrides: Any) -> Agreement:
    data: dict[str, Any] = {
        "id": "vt-aoe-test",
        "recipient": "VT-AOE",
        "legal_basis": "consent",
        "purpose": "testing",
        "purpose_code": "state_longitudinal_data_system",
        "effective": dt.date(2025, 7, 1),
        "last_reviewed": dt.date(2026, 7, 1),
        "record_categories": [c.value for c in RecordCategory],
        "fields": fields,
    }
    data.update(overrides)
    return Agreement.model_validate(data)


def test_only_named_fields_leave_no_default_keep() -> None:
    plan = compile_plan(
        agreement({"sex": "keep", "days_present": "keep"}), Keys(), recipient_code="VT-AOE"
    )
    out = plan.apply(extract(), RUN)
    assert list(out.columns) == ["sex", "days_present"]
    assert out["days_present"].tolist() == [17, 17, 17]


def test_drop_and_excluded_fields_have_no_column_and_are_listed_as_removed() -> None:
    a = agreement({"race": "keep", "sex": "keep", "first_name": "drop", "birth_date": "year"})
    plan = compile_plan(a, Keys(), recipient_code="VT-AOE", excluded_fields={"race"})
    assert plan.columns == ("sex", "birth_date")
    assert set(plan.removed) == {"race", "first_name"}
    out = plan.apply(extract(), RUN)
    assert list(out.columns) == ["sex", "birth_date"]
    assert out["birth_date"].tolist() == [2022, 2022, 2022]


def test_columns_follow_the_agreement_order_and_name_their_source() -> None:
    a = agreement(
        {
            "birth_date": "age_months",
            "child_local_id": "pseudonymize",
            "address_zip": "zip3",
            "entry_date": {"bucket": {"bins": [0, 6, 12]}},
        }
    )
    plan = compile_plan(a, Keys(), recipient_code="VT-AOE")
    assert plan.columns == ("age_months", "child_local_id", "address_zip", "entry_date_months_band")
    assert plan.source("age_months") == "birth_date"
    assert plan.source("entry_date_months_band") == "entry_date"
    with pytest.raises(KeyError):
        plan.source("first_name")
    out = plan.apply(extract(2), RUN)
    assert out["age_months"].tolist() == [54, 54]
    assert out["address_zip"].tolist() == ["054", "054"]
    assert all(re.fullmatch(PSEUDONYM_PATTERN, v) for v in out["child_local_id"])
    assert plan.key_id == "test1"


def test_output_keeps_the_frames_index_and_row_count() -> None:
    frame = extract(4).set_index(pd.Index([10, 3, 10, 7]))  # even a repeated label
    plan = compile_plan(
        agreement({"sex": "keep", "birth_date": "month"}), Keys(), recipient_code="VT-AOE"
    )
    out = plan.apply(frame, RUN)
    assert out.index.tolist() == [10, 3, 10, 7]
    assert out["birth_date"].tolist() == ["2022-05"] * 4


def test_a_plan_without_pseudonyms_never_asks_for_a_key() -> None:
    keys = Keys({})
    plan = compile_plan(agreement({"sex": "keep"}), keys, recipient_code="VT-AOE")
    assert keys.asked == 0 and plan.key_id is None
    assert compile_plan(agreement({"sex": "keep"}), None, recipient_code="VT-AOE").columns == (
        "sex",
    )


@pytest.mark.parametrize(
    "keys",
    [Keys({}), EnvKeyProvider({}), None],
    ids=["provider_without_the_key", "empty_environment", "no_provider"],
)
def test_missing_key_fails_closed_at_compile_time(keys: Any) -> None:
    a = agreement({"sex": "keep", "child_local_id": "pseudonymize"})
    with pytest.raises(MissingKeyError, match="VT-AOE"):
        compile_plan(a, keys, recipient_code="VT-AOE")


def test_plan_for_another_recipient_is_refused() -> None:
    with pytest.raises(TransformError, match="is with VT-AOE, not UVM-CRC"):
        compile_plan(agreement({"sex": "keep"}), Keys(), recipient_code="UVM-CRC")


def test_unknown_excluded_field_is_refused() -> None:
    with pytest.raises(TransformError, match="not in the catalog: tribe"):
        compile_plan(
            agreement({"sex": "keep"}), Keys(), recipient_code="VT-AOE", excluded_fields={"tribe"}
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"birth_date": TransformSpec(name="zip3")}, "does not fit", id="wrong_kind"),
        pytest.param({"sex": TransformSpec(name="hash")}, "unknown transform", id="unknown"),
        pytest.param({"gender": TransformSpec(name="keep")}, "not a catalog field", id="field"),
        pytest.param(
            {"days_present": TransformSpec(name="bucket", params={"bins": [3, 1]})},
            "ascending",
            id="bad_params",
        ),
    ],
)
def test_compile_revalidates_agreements_built_without_validation(
    fields: dict, message: str
) -> None:
    unchecked = agreement({"sex": "keep"}).model_copy(update={"fields": fields})
    with pytest.raises(TransformError, match=message):
        compile_plan(unchecked, Keys(), recipient_code="VT-AOE")


def test_missing_extract_column_is_refused() -> None:
    plan = compile_plan(agreement({"sex": "keep", "race": "keep"}), Keys(), recipient_code="VT-AOE")
    with pytest.raises(TransformError, match=r"lacks column.*race"):
        plan.apply(extract().drop(columns=["race"]), RUN)


def test_repr_and_str_name_rules_not_key_material() -> None:
    plan = compile_plan(
        agreement({"child_local_id": "pseudonymize"}), Keys(), recipient_code="VT-AOE"
    )
    for shown in (repr(plan), str(plan)):
        assert "child_local_id" in shown
        assert repr(KEY.secret) not in shown and KEY.secret.hex() not in shown


NM_COLUMNS = ("program_code", "age_band", "sex", "race", "ethnicity", "disability")
BSD_IDENTITY = ("program_code", "child_local_id", "state_student_id", "first_name")
BSD_REST = ("middle_name", "last_name", "birth_date", "program_type", "program_option")


@pytest.mark.parametrize(
    ("agreement_id", "columns"),
    [
        ("nm-ececd-aggregate", (*NM_COLUMNS, "dual_language_learner")),
        ("vt-bsd-enrollment", (*BSD_IDENTITY, *BSD_REST, "entry_date", "exit_date", "exit_reason")),
    ],
)
def test_demo_plans(agreement_id: str, columns: tuple[str, ...]) -> None:
    a = load_agreements(AGREEMENTS)[agreement_id]
    plan = compile_plan(a, Keys({a.recipient: KEY}), recipient_code=a.recipient)
    assert plan.columns == columns
    assert list(plan.apply(extract(), RUN).columns) == list(columns)


def test_every_demo_plan_compiles_and_never_sends_a_dropped_field() -> None:
    for a in load_agreements(AGREEMENTS).values():
        plan = compile_plan(a, Keys({a.recipient: KEY}), recipient_code=a.recipient)
        out = plan.apply(extract(), RUN)
        assert list(out.columns) == list(plan.columns)
        assert not set(out.columns) & {n for n, s in a.fields.items() if s.name == "drop"}
        assert "child_id" not in out.columns


# --- property: random agreements on random frames ---------------------------------------------


def _fitting(name: str) -> st.SearchStrategy[Any]:
    kind = CATALOG[name].kind
    names = sorted(t for t, transform in TRANSFORMS.items() if kind in transform.kinds)
    bins = st.lists(st.integers(0, 100), min_size=2, max_size=6, unique=True).map(sorted)
    return st.sampled_from(names).flatmap(
        lambda t: bins.map(lambda b: {"bucket": {"bins": b}}) if t == "bucket" else st.just(t)
    )


@st.composite
def agreements(draw: st.DrawFn) -> Agreement:
    names = draw(st.lists(st.sampled_from(sorted(CATALOG)), min_size=1, max_size=12, unique=True))
    fields = {name: draw(_fitting(name)) for name in names}
    if all(spec == "drop" for spec in fields.values()):
        fields[names[0]] = "keep"
    return agreement(fields)


_VALUES: dict[Kind, st.SearchStrategy[Any]] = {
    Kind.TEXT: st.text(max_size=8),
    Kind.IDENTIFIER: st.text(min_size=1, max_size=10) | st.integers(0, 10**6),
    Kind.CODE: st.sampled_from(["a", "b", "c"]),
    Kind.DATE: st.dates(dt.date(1990, 1, 1), dt.date(2030, 12, 31)),
    Kind.FLAG: st.booleans(),
    Kind.COUNT: st.integers(-5, 400),
    Kind.ZIP: st.from_regex(r"\d{3,5}(-\d{4})?", fullmatch=True) | st.text(max_size=6),
}


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(0, 12))
    data: dict[str, list] = {"child_id": list(range(rows))}
    for name, f in CATALOG.items():
        data[name] = draw(st.lists(st.none() | _VALUES[f.kind], min_size=rows, max_size=rows))
    return pd.DataFrame(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    a=agreements(),
    frame=frames(),
    excluded=st.sets(st.sampled_from(sorted(CATALOG)), max_size=3),
    run_date=st.dates(dt.date(2020, 1, 1), dt.date(2032, 12, 31)),
)
def test_output_is_exactly_the_plan_columns_and_never_an_unnamed_field(
    a: Agreement, frame: pd.DataFrame, excluded: set[str], run_date: dt.date
) -> None:
    plan = compile_plan(a, Keys(), recipient_code="VT-AOE", excluded_fields=excluded)
    out = plan.apply(frame, run_date)
    assert list(out.columns) == list(plan.columns)
    assert len(out) == len(frame) and out.index.equals(frame.index)
    leaving = {n for n, spec in a.fields.items() if spec.name != "drop"} - excluded
    assert set(out.columns) & set(CATALOG) <= leaving
    assert {plan.source(c) for c in plan.columns} == leaving
    assert "child_id" not in out.columns
    for column in plan.columns:
        if a.fields[plan.source(column)].name == "pseudonymize":
            values = out[column].dropna()
            assert all(re.fullmatch(PSEUDONYM_PATTERN, v) for v in values)
            assert out[column].isna().tolist() == frame[plan.source(column)].isna().tolist()


def test_public_surface_is_pinned() -> None:
    import privacy.transforms as transforms

    assert set(transforms.__all__) == {
        "PSEUDONYM_PATTERN", "TRANSFORMS", "ColumnRule", "FieldPlan", "Transform",
        "TransformContext", "band_labels", "compile_plan", "get_transform", "pseudonym",
    }  # fmt: skip
    assert all(hasattr(transforms, name) for name in transforms.__all__)
