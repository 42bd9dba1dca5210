"""The Ed-Fi API destination (Data Standard 5.x on ODS/API 7, 6.x on Ed-Fi API 8).

- :mod:`~pipelines.edfi.settings` — the destination's settings (``type: edfi``).
- :mod:`~pipelines.edfi.descriptors` — canonical codes to descriptor URIs, checked against
  the shipped descriptor list, with per-state namespace overrides.
- :mod:`~pipelines.edfi.openapi` — strict local validation against the shipped OpenAPI subset.
- :mod:`~pipelines.edfi.mapping` — permitted rows to resources; :mod:`~pipelines.edfi.rows`
  — reading one child's values, and what is withheld and why.
- :mod:`~pipelines.edfi.auth` — credentials and the one shared OAuth token.
- :mod:`~pipelines.edfi.client` — discovery, writes on a lean connection pool, retries.
- :mod:`~pipelines.edfi.ledger` — the idempotency ledger (``sent_resources``).
- :mod:`~pipelines.edfi.destination` — :class:`EdfiDestination`: deliver, holds, withdraw,
  dry run; :mod:`~pipelines.edfi.results` — what they report.

The reference files it validates against ship in ``reference/`` (Apache-2.0, see NOTICE.md).
"""

from pipelines.edfi.client import ClientCredentials, EdfiClient, Outcome, TokenAuth
from pipelines.edfi.descriptors import DescriptorCatalog, UnknownDescriptorError
from pipelines.edfi.destination import EdfiDestination
from pipelines.edfi.mapping import EdfiMapper, Mapped, MappingError, NotSent, Payload, Reason
from pipelines.edfi.openapi import Problem, ResourceSchemas
from pipelines.edfi.results import DryRun, EdfiDeliveryResult, ResourceResult, WithdrawResult
from pipelines.edfi.settings import EdfiSettings

__all__ = [
    "ClientCredentials",
    "DescriptorCatalog",
    "DryRun",
    "EdfiClient",
    "EdfiDeliveryResult",
    "EdfiDestination",
    "EdfiMapper",
    "EdfiSettings",
    "Mapped",
    "MappingError",
    "NotSent",
    "Outcome",
    "Payload",
    "Problem",
    "Reason",
    "ResourceResult",
    "ResourceSchemas",
    "TokenAuth",
    "UnknownDescriptorError",
    "WithdrawResult",
]
