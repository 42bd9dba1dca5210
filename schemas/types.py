"""Column type helpers."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Enum


def coded(enum: type[StrEnum]) -> Enum:
    """A coded column: stored as its string value, checked against the code set on write."""
    return Enum(
        enum,
        native_enum=False,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
        length=40,
    )
