"""Field transforms: one small class per transform, a registry, and the compiled plan.

``compile_plan(agreement, keys, recipient_code=...)`` validates an agreement's field rules
up front and returns a ``FieldPlan`` whose ``apply(frame, run_date)`` makes exactly its
``columns`` from an extract frame.
"""

from privacy.transforms.base import Transform, TransformContext
from privacy.transforms.bucket import band_labels
from privacy.transforms.plan import ColumnRule, FieldPlan, compile_plan
from privacy.transforms.pseudonymize import PSEUDONYM_PATTERN, pseudonym
from privacy.transforms.registry import TRANSFORMS, get_transform

__all__ = [
    "PSEUDONYM_PATTERN",
    "TRANSFORMS",
    "ColumnRule",
    "FieldPlan",
    "Transform",
    "TransformContext",
    "band_labels",
    "compile_plan",
    "get_transform",
    "pseudonym",
]
