"""Local validation of Ed-Fi payloads against the shipped OpenAPI subset, unknown properties
forbidden, and the natural key (identity) of each resource.

Ed-Fi's own schemas allow unknown properties and the servers drop them silently (a 5.x body
sent to a 6.x server loses its demographics without a word), so each resource's request schema
is inlined from ``components.schemas`` with every ``$ref`` resolved, ``additionalProperties:
false`` on every object, and the server-managed properties (``id``, ``_etag``,
``_lastModifiedDate``, ``link``) removed: we never send them. Validation uses ``jsonschema``
(Draft 2020-12 with the ``date`` format checked) and then checks every ``*Descriptor`` value
against the descriptor list. Problems name the JSON path and the rule, never the value.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from pipelines.edfi.descriptors import REFERENCE_DIR, DescriptorCatalog

RESOURCE_FILES = {
    5: REFERENCE_DIR / "resources-ds-5.0.headstart-subset.json",
    6: REFERENCE_DIR / "resources-ds-6.0.headstart-subset.json",
}
SERVER_MANAGED = frozenset({"id", "_etag", "_lastModifiedDate", "link"})
_VALIDATION_KEYWORDS = frozenset(
    {
        "type",
        "required",
        "properties",
        "items",
        "format",
        "maxLength",
        "minLength",
        "minimum",
        "maximum",
        "additionalProperties",
        "enum",
    }
)
_REF_PREFIX = "#/components/schemas/"


@dataclass(frozen=True, order=True)
class Problem:
    """One way a payload breaks the contract: where (JSON path) and which rule."""

    path: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}: {self.rule}"


class UnknownResourceError(KeyError):
    """A resource the shipped OpenAPI subset does not describe."""


class ResourceSchemas:
    """The request schemas of one Data Standard's resources, strict, ready to validate."""

    def __init__(self, document: Mapping[str, Any], descriptors: DescriptorCatalog) -> None:
        self.descriptors = descriptors
        self._components: Mapping[str, Any] = document["components"]["schemas"]
        self._refs: dict[str, str] = {}
        for path, operations in document["paths"].items():
            post = operations.get("post")
            if post is None or "{" in path:
                continue
            ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            self._refs[path.rsplit("/", 1)[-1]] = ref.removeprefix(_REF_PREFIX)
        self._validators: dict[str, Draft202012Validator] = {}
        self._identities: dict[str, tuple[tuple[str, ...], ...]] = {}

    @classmethod
    def load(cls, data_standard: int, descriptors: DescriptorCatalog) -> ResourceSchemas:
        """The schemas of Data Standard ``data_standard`` (5 or 6) from the shipped subset."""
        return cls(_document(RESOURCE_FILES[data_standard]), descriptors)

    @property
    def resources(self) -> tuple[str, ...]:
        """Every resource the subset describes, e.g. ``students``."""
        return tuple(self._refs)

    def schema(self, resource: str) -> dict[str, Any]:
        """The strict, self-contained request schema of ``resource``."""
        return self._validator(resource).schema  # type: ignore[return-value]

    def validate(self, resource: str, payload: Mapping[str, Any]) -> list[Problem]:
        """Every problem of ``payload`` as a ``resource`` body; empty when it may be sent."""
        errors = self._validator(resource).iter_errors(payload)
        problems = sorted({p for error in errors for p in _problems(error)})
        for path, name, value in _descriptor_values(payload, "$"):
            if not isinstance(value, str) or not self.descriptors.is_known(value, name):
                problems.append(Problem(path, "descriptor not in the descriptor list"))
        return problems

    def identity(self, resource: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The natural key of ``payload``: its identity properties, references flattened to
        ``reference.property`` (e.g. ``studentReference.studentUniqueId``)."""
        if resource not in self._identities:
            root = self._components[self._ref(resource)]
            self._identities[resource] = tuple(self._identity_paths(root, ()))
        key: dict[str, Any] = {}
        for path in self._identities[resource]:
            value: Any = payload
            for part in path:
                value = value.get(part) if isinstance(value, Mapping) else None
            key[".".join(path)] = value
        return key

    def _ref(self, resource: str) -> str:
        try:
            return self._refs[resource]
        except KeyError:
            raise UnknownResourceError(resource) from None

    def _validator(self, resource: str) -> Draft202012Validator:
        if resource not in self._validators:
            schema = _strict(self._components[self._ref(resource)], self._components, ())
            self._validators[resource] = Draft202012Validator(
                schema, format_checker=FormatChecker(formats=("date",))
            )
        return self._validators[resource]

    def _identity_paths(
        self, schema: Mapping[str, Any], prefix: tuple[str, ...]
    ) -> Iterator[tuple[str, ...]]:
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            if "$ref" in prop and name.endswith("Reference") and name in required:
                target = self._components[prop["$ref"].removeprefix(_REF_PREFIX)]
                yield from self._identity_paths(target, (*prefix, name))
            elif prop.get("x-Ed-Fi-isIdentity") and prop.get("type") != "array":
                yield (*prefix, name)


def _strict(
    node: Mapping[str, Any], components: Mapping[str, Any], seen: tuple[str, ...]
) -> dict[str, Any]:
    """``node`` with refs inlined, only validation keywords, unknown properties forbidden."""
    if "$ref" in node:
        name = node["$ref"].removeprefix(_REF_PREFIX)
        if name in seen:
            raise ValueError(f"recursive schema {name}")
        return _strict(components[name], components, (*seen, name))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _VALIDATION_KEYWORDS:
            continue
        if key == "properties":
            out[key] = {
                name: _strict(prop, components, seen)
                for name, prop in value.items()
                if name not in SERVER_MANAGED
            }
        elif key == "items":
            out[key] = _strict(value, components, seen)
        else:
            out[key] = copy.deepcopy(value)
    if "properties" in out or out.get("type") == "object":
        out["type"] = "object"
        out["additionalProperties"] = False
        out.setdefault("properties", {})
    return out


def _problems(error: ValidationError) -> list[Problem]:
    """Problems from a jsonschema error, without the instance value its message carries."""
    path = _json_path(error.absolute_path)
    if error.validator == "required":
        missing = [p for p in error.validator_value if p not in error.instance]
        return [Problem(f"{path}.{name}", "required") for name in missing]
    if error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - allowed)
        return [Problem(f"{path}.{name}", "unknown property") for name in extra]
    if error.validator == "format":
        return [Problem(path, f"format {error.validator_value}")]
    return [Problem(path, f"{error.validator} {error.validator_value}")]


def _json_path(parts: Any) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _descriptor_values(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(path, property name, value) of every ``*Descriptor`` property, at any depth."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            child = f"{path}.{key}"
            if key.endswith("Descriptor") and not isinstance(value, Mapping | list):
                yield child, key, value
            else:
                yield from _descriptor_values(value, child)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _descriptor_values(item, f"{path}[{index}]")


@cache
def _document(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)
