"""A local Ed-Fi contract server for tests and benchmarks (FastAPI on uvicorn, loopback only).

Built from the Ed-Fi Alliance's contract files (the upstream copies shipped in
``pipelines/edfi/reference``, pinned by digest in ``tests/fixtures``), independently of the
product's own validation code so that it checks it rather than mirrors it:

- ``GET /`` discovery document (token, dependencies, metadata and data URLs);
  ``GET /metadata`` and ``/metadata/data/v3/dependencies`` (what lightbeam reads);
  ``POST /oauth/token`` (client credentials, HTTP Basic or form fields, ``expires_in``).
- ``POST /{data}/ed-fi/{resource}``: upsert on the natural key (``x-Ed-Fi-isIdentity``, with
  required references flattened), 201 + ``Location`` for new, 200 for updates. Validated
  against the OpenAPI subset with unknown properties forbidden (400 "Data Validation
  Failed"), descriptors against the reference list (400), references (409 "Unresolved
  Reference"), and the rule that a student's other associations need its school association
  first (403, DMS wording). Problem-details bodies are shaped like ``dms-e2e-http-cases.json``.
- ``GET`` by id or by query (any property at any depth, by its name), ``DELETE`` by id (409
  when other items still reference it). Data URLs: ``/data/v3`` (ODS/API 7, DS 5) or ``/data``
  (API 8, DS 6).
- Fault switches (:class:`Faults`): status bursts (429 with ``Retry-After``, 503, ...), held
  requests (unanswered until their client gives up, and then never processed), dropped
  connections (before or after processing), token expiry now or after N requests.

``POST /_admin/reset`` forgets everything and ``GET /_admin/stats`` tells what is held and
the span from the first data POST to the last answer (for benchmarks).

``EdfiContractServer(...).start()`` runs uvicorn in a daemon thread on 127.0.0.1 at a random
port; ``python -m tests.edfi.contract_server --port 8765`` runs one in the foreground for the
example destination (credentials ``EDFI_CLIENT_ID`` / ``EDFI_CLIENT_SECRET``, default
``datashare`` / ``datashare-secret``).
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from jsonschema import Draft7Validator, FormatChecker

from tests.edfi.contract_faults import FaultMiddleware, Faults, problem
from tests.fixtures import EDFI_REFERENCE

REFERENCE = EDFI_REFERENCE
RESOURCES = {
    5: "resources-ds-5.0.headstart-subset.json",
    6: "resources-ds-6.0.headstart-subset.json",
}
DATA_PREFIX = {5: "/data/v3", 6: "/data"}
DEPENDENCY_ORDER = [
    ("stateEducationAgencies", 1),
    ("localEducationAgencies", 2),
    ("schools", 3),
    ("programs", 4),
    ("students", 5),
    ("contacts", 5),
    ("studentSchoolAssociations", 6),
]
_REF = "#/components/schemas/"
_PAGING = {"offset", "limit", "totalCount"}


class EdfiContractServer:
    """An in-memory Ed-Fi API (see module doc)."""

    def __init__(
        self,
        data_standard: int = 5,
        *,
        reference: Path = REFERENCE,
        clients: Mapping[str, str] | None = None,
        schools: Iterable[int] = (255901001,),
        education_organizations: Iterable[int] = (255901,),
        namespace_overrides: Mapping[str, str] | None = None,
        unknown_descriptors: Iterable[str] = (),
        token_ttl: float = 1800.0,
        forbid_unknown: bool = True,
    ) -> None:
        self.data_standard = data_standard
        self.prefix = DATA_PREFIX[data_standard]
        self.clients = dict(clients or {"datashare": "datashare-secret"})
        self.schools = set(schools)
        self.organizations = set(education_organizations) | self.schools
        self.token_ttl = token_ttl
        self.faults = Faults()
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.requests: Counter[str] = Counter()
        self.writes: Counter[tuple[str, str]] = Counter()
        self.store: dict[str, dict[str, dict[str, Any]]] = {}
        self.index: dict[str, dict[str, str]] = {}
        self._enrolled: Counter[str] = Counter()
        self.window: list[float] = []
        document = json.loads((reference / RESOURCES[data_standard]).read_text("utf-8"))
        self._document = document
        self._dependencies = _dependencies(document)
        self._components = _forbid_unknown(document["components"]["schemas"], forbid_unknown)
        self._schema_of = {
            path.rsplit("/", 1)[-1]: ops["post"]["requestBody"]["content"]["application/json"][
                "schema"
            ]["$ref"].removeprefix(_REF)
            for path, ops in document["paths"].items()
            if "post" in ops
        }
        self._validators: dict[str, Draft7Validator] = {}
        self.descriptors = _descriptor_uris(reference, namespace_overrides or {})
        self.descriptors -= {u.lower() for u in unknown_descriptors}
        self.app = self._build_app()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, port: int = 0) -> EdfiContractServer:
        """Serve on 127.0.0.1 (a random free port unless given) in a daemon thread."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        config = uvicorn.Config(
            self.app,
            log_level="critical",
            lifespan="off",
            loop="asyncio",
            access_log=False,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("contract server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def reset(self) -> None:
        """As new, between tests sharing one running server: no items, counts, tokens or
        faults (call it while no request is in flight)."""
        self.faults.clear()
        self._forget()
        self.tokens.clear()
        self.tokens_issued = 0

    def __enter__(self) -> EdfiContractServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- what tests read ----------------------------------------------------------------------

    def held(self, resource: str) -> list[dict[str, Any]]:
        """Copies of the stored items of ``resource``."""
        return [dict(item) for item in list(self.store.get(resource, {}).values())]

    def held_keys(self, resource: str) -> set[str]:
        """The natural keys (canonical JSON) of the stored items of ``resource``."""
        return set(self.index.get(resource, {}))

    def key_of(self, resource: str, body: Mapping[str, Any]) -> str:
        """The natural key of ``body`` as canonical JSON."""
        schema = self._components[self._schema_of[resource]]
        return json.dumps(dict(_identity(body, schema, self._components)), sort_keys=True)

    def data_url(self, resource: str) -> str:
        """Where ``resource`` lives on this server."""
        return f"{self.base_url.rstrip('/')}{self.prefix}/ed-fi/{resource}"

    # --- the app ------------------------------------------------------------------------------

    def _build_app(self) -> Any:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        app.add_api_route("/", self._discovery, methods=["GET"])
        app.add_api_route("/metadata", self._metadata, methods=["GET"])
        app.add_api_route("/metadata/data/v3/dependencies", self._dependency_list, methods=["GET"])
        app.add_api_route(
            "/metadata/data/v3/resources/swagger.json", self._swagger, methods=["GET"]
        )
        app.add_api_route("/oauth/token", self._token, methods=["POST"])
        app.add_api_route("/_admin/reset", self._reset, methods=["POST"])
        app.add_api_route("/_admin/stats", self._stats, methods=["GET"])
        data = f"{self.prefix}/ed-fi/{{resource}}"
        app.add_api_route(data, self._post, methods=["POST"])
        app.add_api_route(data, self._query, methods=["GET"])
        app.add_api_route(f"{data}/{{item_id}}", self._get_one, methods=["GET"])
        app.add_api_route(f"{data}/{{item_id}}", self._delete, methods=["DELETE"])
        return FaultMiddleware(app, self)

    async def _discovery(self, request: Request) -> JSONResponse:
        base = str(request.base_url).rstrip("/")
        version = "5.2.0" if self.data_standard == 5 else "6.1.0"
        return JSONResponse(
            {
                "version": "7.3" if self.data_standard == 5 else "8.0",
                "suite": "3",
                "apiMode": "Sandbox",
                "dataModels": [{"name": "Ed-Fi", "version": version}],
                "urls": {
                    "dependencies": f"{base}/metadata/data/v3/dependencies",
                    "openApiMetadata": f"{base}/metadata",
                    "oauth": f"{base}/oauth/token",
                    "dataManagementApi": f"{base}{self.prefix}",
                },
            }
        )

    async def _reset(self) -> JSONResponse:
        """Forget every item and count (benchmarks run several senders against one server)."""
        self._forget()
        return JSONResponse({"reset": True})

    def _forget(self) -> None:
        for table in (self.store, self.index, self.writes, self.requests, self._enrolled):
            table.clear()
        self.window.clear()

    async def _stats(self) -> JSONResponse:
        """Items held, writes, and the span from the first data POST to the last answer."""
        span = self.window[-1] - self.window[0] if len(self.window) > 1 else 0.0
        return JSONResponse(
            {
                "held": {name: len(items) for name, items in self.store.items()},
                "writes": sum(self.writes.values()),
                "posts": self.requests["POST data"],
                "seconds": span,
            }
        )

    async def _metadata(self, request: Request) -> JSONResponse:
        base = str(request.base_url).rstrip("/")
        uri = f"{base}/metadata/data/v3/resources/swagger.json"
        return JSONResponse([{"name": "Resources", "endpointUri": uri, "prefix": ""}])

    async def _swagger(self) -> JSONResponse:
        return JSONResponse(self._document)

    async def _dependency_list(self) -> JSONResponse:
        return JSONResponse(self._dependencies)

    async def _token(self, request: Request) -> JSONResponse:
        self.requests["token"] += 1
        self.faults.notify()
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8")).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if client_id not in self.clients or self.clients[client_id] != secret:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = uuid.uuid4().hex
        self.tokens[token] = time.monotonic() + self.token_ttl
        self.tokens_issued += 1
        return JSONResponse(
            {"access_token": token, "expires_in": self.token_ttl, "token_type": "bearer"}
        )

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        return self.tokens.get(token, 0.0) > time.monotonic()

    def _unauthorized(self) -> JSONResponse:
        body = problem(
            401,
            "urn:ed-fi:api:security:authentication",
            "Authentication Failed",
            "The caller could not be authenticated.",
        )
        return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    async def _post(self, resource: str, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        if resource not in self._schema_of:
            return JSONResponse(
                problem(
                    404,
                    "urn:ed-fi:api:not-found",
                    "Not Found",
                    "The specified data could not be found.",
                ),
                404,
            )
        raw = await request.body()
        if not raw.strip():
            return _bad_request(errors=["A non-empty request body is required."])
        try:
            body = json.loads(raw)
        except ValueError:
            return _bad_request(validation={"$.": ["The request body is not valid JSON."]})
        if not isinstance(body, dict):
            return _bad_request(errors=["The request body must be a JSON object."])
        schema_errors = self._schema_errors(resource, body)
        if schema_errors:
            return JSONResponse(
                problem(
                    400,
                    "urn:ed-fi:api:bad-request:data-validation-failed",
                    "Data Validation Failed",
                    "Data validation failed. See 'validationErrors' for details.",
                    validationErrors=schema_errors,
                ),
                400,
            )
        descriptor_errors = self._descriptor_errors(body)
        if descriptor_errors:
            return _bad_request(validation=descriptor_errors)
        references = self._reference_errors(resource, body)
        if references:
            return JSONResponse(
                problem(
                    409,
                    "urn:ed-fi:api:data-conflict:unresolved-reference",
                    "Unresolved Reference",
                    "One or more references could not be resolved. See 'validationErrors' for "
                    "details.",
                    validationErrors=references,
                ),
                409,
            )
        if self._needs_school_association(resource, body):
            return JSONResponse(
                problem(
                    403,
                    "urn:ed-fi:api:security:authorization:relationships:access-denied:"
                    "element-required",
                    "Authorization Denied",
                    "Access to the requested data could not be authorized. The values of one or "
                    "more of the following properties are required for authorization purposes: "
                    "'EducationOrganizationId', 'StudentUniqueId'. Hint: You may need to create a "
                    "corresponding 'StudentSchoolAssociation' item.",
                ),
                403,
            )
        return self._upsert(resource, body)

    def _upsert(self, resource: str, body: dict[str, Any]) -> Response:
        key = self.key_of(resource, body)
        items, index = self.store.setdefault(resource, {}), self.index.setdefault(resource, {})
        item_id = index.get(key)
        status = 200 if item_id else 201
        item_id = item_id or uuid.uuid4().hex
        etag = uuid.uuid4().hex[:12]
        if resource == "studentSchoolAssociations" and status == 201:
            self._enrolled[body["studentReference"]["studentUniqueId"]] += 1
        items[item_id] = {"id": item_id, **body, "_etag": etag}
        index[key] = item_id
        self.writes[(resource, key)] += 1
        location = self.data_url(resource) + f"/{item_id}"
        return Response(status_code=status, headers={"Location": location, "ETag": etag})

    async def _query(self, resource: str, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        params = {k: v for k, v in request.query_params.items() if k not in _PAGING}
        offset = int(request.query_params.get("offset", 0))
        limit = int(request.query_params.get("limit", 25))
        found = [
            item
            for item in self.store.get(resource, {}).values()
            if all(_has(item, name, value) for name, value in params.items())
        ]
        return JSONResponse(found[offset : offset + limit])

    async def _get_one(self, resource: str, item_id: str, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        item = self.store.get(resource, {}).get(item_id)
        if item is None:
            return JSONResponse(
                problem(404, "urn:ed-fi:api:not-found", "Not Found", "Resource was not found"), 404
            )
        return JSONResponse(item)

    async def _delete(self, resource: str, item_id: str, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        item = self.store.get(resource, {}).get(item_id)
        if item is None:
            return JSONResponse(
                problem(
                    404, "urn:ed-fi:api:not-found", "Not Found", "Resource to delete was not found"
                ),
                404,
            )
        dependents = self._dependents(resource, item)
        if dependents:
            return JSONResponse(
                problem(
                    409,
                    "urn:ed-fi:api:data-conflict:dependent-item-exists",
                    "Dependent Item Exists",
                    "The requested action cannot be performed because this item is referenced by "
                    f"existing {', '.join(sorted(dependents))} item(s).",
                ),
                409,
            )
        del self.store[resource][item_id]
        if resource == "studentSchoolAssociations":
            self._enrolled[item["studentReference"]["studentUniqueId"]] -= 1
        key = self.key_of(resource, item)
        self.index[resource].pop(key, None)
        self.requests[f"deleted {resource}"] += 1
        return Response(status_code=204)

    # --- rules --------------------------------------------------------------------------------

    def _validator(self, resource: str) -> Draft7Validator:
        if resource not in self._validators:
            root = {
                "$ref": _REF + self._schema_of[resource],
                "components": {"schemas": self._components},
            }
            self._validators[resource] = Draft7Validator(root, format_checker=FormatChecker())
        return self._validators[resource]

    def _schema_errors(self, resource: str, body: dict[str, Any]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        for error in self._validator(resource).iter_errors(body):
            path = "$" + "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
            )
            name = path.rsplit(".", 1)[-1]
            if error.validator == "required":
                for missing in error.validator_value:
                    if missing not in error.instance:
                        errors.setdefault(f"{path}.{missing}", []).append(f"{missing} is required.")
            elif error.validator == "additionalProperties":
                for extra in sorted(set(error.instance) - set(error.schema["properties"])):
                    errors.setdefault(f"{path}.{extra}", []).append(
                        f"{extra} is not a property of this resource."
                    )
            elif error.validator == "maxLength":
                errors.setdefault(path, []).append(
                    f"{name} Value should be at most {error.validator_value} characters"
                )
            elif error.validator == "minLength":
                errors.setdefault(path, []).append(
                    f"{name} Value should be at least {error.validator_value} characters"
                )
            else:
                errors.setdefault(path, []).append(f"{name} is invalid ({error.validator}).")
        for path, value in _strings(body, "$"):
            if value != value.strip():
                name = path.rsplit(".", 1)[-1]
                errors.setdefault(path, []).append(
                    f"{name} cannot contain leading or trailing spaces."
                )
        return errors

    def _descriptor_errors(self, body: dict[str, Any]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        for path, value in _strings(body, "$"):
            if not path.endswith("Descriptor"):
                continue
            if value.lower() not in self.descriptors:
                kind = value.split("#")[0].rsplit("/", 1)[-1] or "Descriptor"
                errors.setdefault(path, []).append(
                    f"{kind} value '{value.lower()}' does not exist."
                )
        return errors

    def _reference_errors(self, resource: str, body: dict[str, Any]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        student = body.get("studentReference")
        if resource != "students" and isinstance(student, dict):
            wanted = json.dumps({"studentUniqueId": student.get("studentUniqueId")})
            if wanted not in self.index.get("students", {}):
                errors["$.studentReference"] = ["The referenced Student item does not exist."]
        school = body.get("schoolReference")
        if isinstance(school, dict) and school.get("schoolId") not in self.schools:
            errors["$.schoolReference"] = ["The referenced School item does not exist."]
        organization = body.get("educationOrganizationReference")
        if isinstance(organization, dict) and (
            organization.get("educationOrganizationId") not in self.organizations
        ):
            errors["$.educationOrganizationReference"] = [
                "The referenced EducationOrganization item does not exist."
            ]
        program = body.get("programReference")
        if isinstance(program, dict):
            wanted = json.dumps(
                {
                    "educationOrganizationReference.educationOrganizationId": program.get(
                        "educationOrganizationId"
                    ),
                    "programName": program.get("programName"),
                    "programTypeDescriptor": program.get("programTypeDescriptor"),
                },
                sort_keys=True,
            )
            if wanted not in self.index.get("programs", {}):
                errors["$.programReference"] = ["The referenced Program item does not exist."]
        return errors

    def _needs_school_association(self, resource: str, body: dict[str, Any]) -> bool:
        if resource in ("students", "studentSchoolAssociations"):
            return False
        student = body.get("studentReference")
        if not isinstance(student, dict):
            return False
        return self._enrolled[student.get("studentUniqueId")] <= 0

    def _dependents(self, resource: str, item: dict[str, Any]) -> set[str]:
        found = set()
        if resource == "students":
            for other, items in self.store.items():
                if other != "students" and any(
                    i.get("studentReference", {}).get("studentUniqueId") == item["studentUniqueId"]
                    for i in items.values()
                ):
                    found.add(other)
        if resource == "programs":
            for other, items in self.store.items():
                if any(
                    i.get("programReference", {}).get("programName") == item["programName"]
                    for i in items.values()
                ):
                    found.add(other)
        return found


def _bad_request(
    *, validation: dict[str, list[str]] | None = None, errors: list[str] | None = None
) -> JSONResponse:
    detail = (
        "Data validation failed. See 'validationErrors' for details."
        if validation
        else "The request could not be processed. See 'errors' for details."
    )
    return JSONResponse(
        problem(
            400,
            "urn:ed-fi:api:bad-request",
            "Bad Request",
            detail,
            validationErrors=validation or {},
            errors=errors or [],
        ),
        400,
    )


def _forbid_unknown(components: Mapping[str, Any], forbid: bool) -> dict[str, Any]:
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: walk(v) for k, v in node.items()}
            if forbid and "properties" in out:
                out["additionalProperties"] = False
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(dict(components))


def _identity(
    body: Mapping[str, Any],
    schema: Mapping[str, Any],
    components: Mapping[str, Any],
    prefix: str = "",
) -> Iterator[tuple[str, Any]]:
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        if "$ref" in prop and name.endswith("Reference") and name in required:
            inner = body.get(name) if isinstance(body.get(name), Mapping) else {}
            target = components[prop["$ref"].removeprefix(_REF)]
            yield from _identity(inner, target, components, f"{prefix}{name}.")
        elif prop.get("x-Ed-Fi-isIdentity") and prop.get("type") != "array":
            yield f"{prefix}{name}", body.get(name)


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


def _has(node: Any, name: str, value: str) -> bool:
    if isinstance(node, dict):
        return any(
            (k == name and not isinstance(v, dict | list) and str(v) == value)
            or _has(v, name, value)
            for k, v in node.items()
        )
    if isinstance(node, list):
        return any(_has(v, name, value) for v in node)
    return False


def _descriptor_uris(reference: Path, overrides: Mapping[str, str]) -> set[str]:
    uris = set()
    with (reference / "descriptors-ds-5.2.0-flat.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            namespace = overrides.get(row["descriptorType"], row["namespace"])
            uris.add(f"{namespace}#{row['codeValue']}".lower())
    return uris


def _dependencies(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    order = dict(DEPENDENCY_ORDER)
    resources = [p.rsplit("/", 1)[-1] for p, ops in document["paths"].items() if "post" in ops]
    return [
        {
            "resource": f"/ed-fi/{name}",
            "order": order.get(name, 7),
            "operations": ["Create", "Update", "Delete"],
        }
        for name in resources
    ]


def main() -> None:
    """Run a contract server in the foreground (for the example destination)."""
    parser = argparse.ArgumentParser(description="Local Ed-Fi contract server")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--data-standard", type=int, choices=(5, 6), default=5)
    args = parser.parse_args()
    client = os.environ.get("EDFI_CLIENT_ID", "datashare")
    secret = os.environ.get("EDFI_CLIENT_SECRET", "datashare-secret")
    server = EdfiContractServer(
        args.data_standard,
        clients={client: secret},
        schools=range(255901001, 255901010),
        education_organizations=(255901,),
    )
    server.start(args.port)
    print(f"Ed-Fi contract server (DS {args.data_standard}) at {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
