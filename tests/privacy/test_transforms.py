"""Each field transform, table-driven: values, boundaries, nulls and parameter validation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest

from privacy.errors import TransformError
from privacy.fields import CATALOG
from privacy.transforms import TRANSFORMS, TransformContext, band_labels, get_transform

D = dt.date
RUN = D(2026, 11, 27)


def run(name: str, field: str, values: list[Any], *, on: dt.date = RUN, **params: Any) -> list:
    """Apply transform ``name`` to ``values`` of catalog ``field``; nulls come back as None."""
    transform = get_transform(name)
    transform.validate(params, CATALOG[field])
    series = pd.Series(values, dtype=object)
    out = transform.apply(series, TransformContext(CATALOG[field], params, on))
    assert len(out) == len(values)
    assert out.index.equals(series.index)
    return [None if pd.isna(v) else v for v in out.tolist()]


@pytest.mark.parametrize(
    ("birth", "on", "months"),
    [
        pytest.param(D(2022, 5, 10), D(2026, 5, 10), 48, id="on_the_birthday"),
        pytest.param(D(2022, 5, 10), D(2026, 5, 9), 47, id="the_day_before_the_birthday"),
        pytest.param(D(2022, 5, 10), D(2026, 6, 9), 48, id="the_day_before_the_monthly_day"),
        pytest.param(D(2026, 11, 27), D(2026, 11, 27), 0, id="born_on_the_run_date"),
        pytest.param(D(2026, 11, 28), D(2026, 11, 27), None, id="born_after_the_run_date_is_null"),
        pytest.param(D(2024, 2, 29), D(2025, 2, 28), 12, id="feb29_birth_on_feb28_common_year"),
        pytest.param(D(2024, 2, 29), D(2025, 2, 27), 11, id="feb29_birth_on_feb27_common_year"),
        pytest.param(D(2024, 2, 29), D(2025, 3, 1), 12, id="feb29_birth_on_mar1_common_year"),
        pytest.param(D(2024, 2, 29), D(2028, 2, 28), 47, id="feb29_birth_on_feb28_leap_year"),
        pytest.param(D(2024, 2, 29), D(2028, 2, 29), 48, id="feb29_birth_on_feb29_leap_year"),
        pytest.param(D(2025, 1, 31), D(2025, 2, 28), 1, id="jan31_birth_on_last_day_of_feb"),
        pytest.param(D(2025, 1, 31), D(2025, 2, 27), 0, id="jan31_birth_before_end_of_feb"),
        pytest.param(D(2025, 1, 31), D(2025, 4, 30), 3, id="jan31_birth_on_apr30"),
        pytest.param(D(2021, 12, 15), D(2026, 1, 14), 48, id="across_a_year_end"),
        pytest.param(None, RUN, None, id="null_stays_null"),
    ],
)
def test_age_months(birth: dt.date | None, on: dt.date, months: int | None) -> None:
    assert run("age_months", "birth_date", [birth], on=on) == [months]


def test_age_months_accepts_datetime64_columns_and_unreadable_values() -> None:
    transform = get_transform("age_months")
    ctx = TransformContext(CATALOG["birth_date"], {}, RUN)
    series = pd.Series(pd.to_datetime(["2022-11-27", None]))
    assert transform.apply(series, ctx).tolist() == [48, pd.NA]
    assert run("age_months", "birth_date", ["not a date"]) == [None]


def test_age_months_is_an_integer_column_named_age_months() -> None:
    transform = get_transform("age_months")
    out = transform.apply(
        pd.Series([D(2022, 1, 1), None]), TransformContext(CATALOG["birth_date"], {}, RUN)
    )
    assert str(out.dtype) == "Int64"
    assert transform.output_column(CATALOG["birth_date"], {}) == "age_months"
    assert transform.output_column(CATALOG["entry_date"], {}) == "entry_date_months"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(D(2022, 5, 10), "2022-05", id="a_date"),
        pytest.param(D(2024, 12, 31), "2024-12", id="december"),
        pytest.param(pd.Timestamp("2023-01-02"), "2023-01", id="a_timestamp"),
        pytest.param(None, None, id="null"),
        pytest.param(pd.NaT, None, id="nat"),
        pytest.param("garbage", None, id="unreadable_becomes_null"),
    ],
)
def test_month(value: Any, expected: str | None) -> None:
    assert run("month", "birth_date", [value]) == [expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(D(2022, 5, 10), 2022, id="a_date"),
        pytest.param(None, None, id="null"),
    ],
)
def test_year(value: Any, expected: int | None) -> None:
    assert run("year", "birth_date", [value]) == [expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("05401", "054", id="five_digits"),
        pytest.param("05401-1234", "054", id="zip_plus_4"),
        pytest.param("054011234", "054", id="zip_plus_4_without_dash"),
        pytest.param(" 87501 ", "875", id="surrounding_spaces"),
        pytest.param("5401", None, id="short_zip_is_null"),
        pytest.param("054", None, id="three_digits_is_null"),
        pytest.param("05401-12", None, id="truncated_plus_4_is_null"),
        pytest.param("ABCDE", None, id="letters_are_null"),
        pytest.param("", None, id="empty_is_null"),
        pytest.param(5401, None, id="a_number_that_lost_its_zero_is_null"),
        pytest.param(None, None, id="null"),
    ],
)
def test_zip3(value: Any, expected: str | None) -> None:
    assert run("zip3", "address_zip", [value]) == [expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0, "0-9", id="first_edge"),
        pytest.param(9, "0-9", id="just_below_second_edge"),
        pytest.param(10, "10-19", id="second_edge"),
        pytest.param(19, "10-19", id="just_below_third_edge"),
        pytest.param(20, "20+", id="last_edge_opens_the_top_band"),
        pytest.param(500, "20+", id="far_above"),
        pytest.param(-1, None, id="below_the_first_edge_is_null"),
        pytest.param(None, None, id="null"),
        pytest.param(np.nan, None, id="nan"),
    ],
)
def test_bucket_on_a_count(value: Any, expected: str | None) -> None:
    assert run("bucket", "days_present", [value], bins=[0, 10, 20]) == [expected]


@pytest.mark.parametrize(
    ("birth", "expected"),
    [
        pytest.param(D(2024, 11, 28), "12-23", id="one_day_before_24_months"),
        pytest.param(D(2024, 11, 27), "24-35", id="exactly_24_months"),
        pytest.param(D(2026, 11, 27), "0-11", id="newborn"),
        pytest.param(D(2020, 1, 1), "60+", id="older_than_the_last_edge"),
        pytest.param(D(2027, 1, 1), None, id="born_after_the_run_date"),
        pytest.param(None, None, id="null"),
    ],
)
def test_bucket_on_a_birth_date_uses_age_in_months(birth: Any, expected: str | None) -> None:
    assert run("bucket", "birth_date", [birth], bins=[0, 12, 24, 36, 48, 60]) == [expected]


@pytest.mark.parametrize(
    ("bins", "labels"),
    [
        pytest.param([0, 12, 24], ["0-11", "12-23", "24+"], id="year_bands"),
        pytest.param([0, 1, 2], ["0", "1", "2+"], id="single_value_bands"),
        pytest.param([5, 100], ["5-99", "100+"], id="two_edges"),
    ],
)
def test_band_labels(bins: list[int], labels: list[str]) -> None:
    assert band_labels(bins) == labels


def test_bucket_output_columns() -> None:
    bucket = get_transform("bucket")
    params = {"bins": [0, 12]}
    assert bucket.output_column(CATALOG["birth_date"], params) == "age_band"
    assert bucket.output_column(CATALOG["entry_date"], params) == "entry_date_months_band"
    assert bucket.output_column(CATALOG["days_present"], params) == "days_present"


def test_keep_passes_values_and_dtype_through() -> None:
    series = pd.Series([D(2022, 1, 1), None, D(2023, 5, 6)], dtype=object)
    out = get_transform("keep").apply(series, TransformContext(CATALOG["birth_date"], {}, RUN))
    assert out.tolist() == series.tolist()
    assert out.dtype == series.dtype


def test_many_rows_keep_their_order_and_nulls() -> None:
    values = [f"{z:05d}" if z % 7 else None for z in range(1000)]
    out = run("zip3", "address_zip", values)
    assert out == [v[:3] if v else None for v in values]


@pytest.mark.parametrize(
    ("name", "field", "params", "message"),
    [
        pytest.param("zip3", "birth_date", {}, "zip3 does not fit birth_date", id="zip3_on_a_date"),
        pytest.param("month", "address_zip", {}, "month does not fit", id="month_on_a_zip"),
        pytest.param("age_months", "days_present", {}, "does not fit", id="age_on_a_count"),
        pytest.param("pseudonymize", "first_name", {}, "does not fit", id="pseudonym_of_a_name"),
        pytest.param("bucket", "sex", {"bins": [0, 1]}, "does not fit", id="bucket_on_a_code"),
        pytest.param("keep", "sex", {"x": 1}, "unknown parameter x", id="keep_with_a_param"),
        pytest.param("bucket", "days_present", {}, "needs bins", id="bucket_without_bins"),
        pytest.param("bucket", "days_present", {"bins": "0,1"}, "needs bins", id="bins_as_text"),
        pytest.param("bucket", "days_present", {"bins": [5]}, "2 to 50", id="one_bin"),
        pytest.param(
            "bucket", "days_present", {"bins": list(range(60))}, "2 to 50", id="too_many_bins"
        ),
        pytest.param(
            "bucket", "days_present", {"bins": [0, 10, 5]}, "strictly ascending", id="descending"
        ),
        pytest.param(
            "bucket", "days_present", {"bins": [0, 10, 10]}, "strictly ascending", id="repeated"
        ),
        pytest.param("bucket", "days_present", {"bins": [-5, 10]}, "0 or more", id="negative"),
        pytest.param("bucket", "days_present", {"bins": [0, 1.5]}, "whole numbers", id="float"),
        pytest.param("bucket", "days_present", {"bins": [False, True]}, "whole", id="booleans"),
        pytest.param(
            "bucket",
            "days_present",
            {"bins": [0, 5], "width": 2},
            "unknown parameter width",
            id="unknown_bucket_param",
        ),
    ],
)
def test_validate_refuses(name: str, field: str, params: dict, message: str) -> None:
    with pytest.raises(TransformError, match=message):
        get_transform(name).validate(params, CATALOG[field])


def test_unknown_transform_is_refused() -> None:
    with pytest.raises(TransformError, match="unknown transform 'hash'"):
        get_transform("hash")


def test_registry_names_match_classes_and_every_transform_explains_itself() -> None:
    assert set(TRANSFORMS) == {
        "keep", "drop", "pseudonymize", "month", "year", "age_months", "zip3", "bucket",
    }  # fmt: skip
    for name, transform in TRANSFORMS.items():
        assert transform.name == name
        field = next(f for f in CATALOG.values() if f.kind in transform.kinds)
        params = {"bins": [0, 12]} if name == "bucket" else {}
        transform.validate(params, field)
        assert transform.explain(field, params)


def test_explain_phrases() -> None:
    birth = CATALOG["birth_date"]
    assert get_transform("month").explain(birth, {}) == "reduced to month and year"
    assert "age in whole months" in get_transform("age_months").explain(birth, {})
    assert "0-11, 12-23, 24+" in get_transform("bucket").explain(birth, {"bins": [0, 12, 24]})
