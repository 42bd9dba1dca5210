"""SQLAlchemy 2 models of the program's child records, consents and ledgers.

Imports nothing of ours; every layer above may import it.
"""

from schemas.access import DisclosureAccess
from schemas.base import Base
from schemas.delivery import DeliveredRecord, Delivery, SentResource
from schemas.ledgers import (
    DisclosureEntry,
    LedgerAnchor,
    ParticipationEvent,
    QuarantinedRow,
    RedactionEntry,
    Run,
)
from schemas.operations import RunStop, StagedChunk
from schemas.records import (
    Attendance,
    Child,
    Enrollment,
    Guardian,
    ParentStatement,
    Program,
    Site,
)
from schemas.sharing import Consent, EnrollmentNotice, Recipient
from schemas.verification import LedgerCheckpoint, LedgerVerifyJob

__all__ = [
    "Attendance",
    "Base",
    "Child",
    "Consent",
    "DeliveredRecord",
    "Delivery",
    "DisclosureAccess",
    "DisclosureEntry",
    "Enrollment",
    "EnrollmentNotice",
    "Guardian",
    "LedgerAnchor",
    "LedgerCheckpoint",
    "LedgerVerifyJob",
    "ParentStatement",
    "ParticipationEvent",
    "Program",
    "QuarantinedRow",
    "Recipient",
    "RedactionEntry",
    "Run",
    "RunStop",
    "SentResource",
    "Site",
    "StagedChunk",
]
