"""SQLAlchemy 2 models of the program's child records, consents and ledgers.

Imports nothing of ours; every layer above may import it.
"""

from schemas.base import Base
from schemas.delivery import Delivery, SentResource
from schemas.ledgers import DisclosureEntry, ParticipationEvent, QuarantinedRow, RedactionEntry, Run
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

__all__ = [
    "Attendance",
    "Base",
    "Child",
    "Consent",
    "Delivery",
    "DisclosureEntry",
    "Enrollment",
    "EnrollmentNotice",
    "Guardian",
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
