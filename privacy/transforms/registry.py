"""The factory: transform names (as written in agreements) to transform instances."""

from __future__ import annotations

from privacy.errors import TransformError
from privacy.transforms.age_months import AgeMonths
from privacy.transforms.base import Transform
from privacy.transforms.bucket import Bucket
from privacy.transforms.drop import Drop
from privacy.transforms.keep import Keep
from privacy.transforms.month import Month
from privacy.transforms.pseudonymize import Pseudonymize
from privacy.transforms.year import Year
from privacy.transforms.zip3 import Zip3

TRANSFORMS: dict[str, Transform] = {
    t.name: t
    for t in (Keep(), Drop(), Pseudonymize(), Month(), Year(), AgeMonths(), Zip3(), Bucket())
}
"""Every transform an agreement may name, by name."""


def get_transform(name: str) -> Transform:
    """The transform called ``name``; ``TransformError`` for a name we do not know."""
    try:
        return TRANSFORMS[name]
    except KeyError:
        known = ", ".join(TRANSFORMS)
        raise TransformError(f"unknown transform {name!r} (known: {known})") from None
