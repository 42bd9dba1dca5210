"""The exceptions of the privacy package: one root, a small tree, append-only.

Every message names a file, line, field, rule or recipient, never a value of a child's record
and never key material. All are terminal (retrying does not help): fix the policy, the key or
the input, then run again.

```
PrivacyError                 root: anything the privacy layer refuses (fail closed)
├── AgreementError           agreement files are invalid; ``problems`` says file:line: what
├── TransformError           a field rule cannot be compiled or applied (unknown transform,
│                            bad params, a transform that does not fit the field, a column
│                            missing from the extract)
├── MissingKeyError          no pseudonymization key for a recipient; says where it looked
├── InvalidKeyError          a key was found but is malformed or stored unsafely
├── DecisionError            the decision's inputs are unusable (missing column,
│                            duplicate child, agreement for another recipient)
├── ParticipationError       a participation change is invalid (unknown program or
│                            recipient, opt-in for a non-AIAN program, no decider)
└── LedgerError              a ledger append is refused (invalid entry) or the ledger key
                             is unusable
```

Other modules of ``privacy`` add their subclasses here, below this line, with one line in the
tree above.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class PrivacyError(Exception):
    """Root of every error the privacy layer raises; nothing leaves when one is raised."""


@dataclass(frozen=True, slots=True)
class AgreementProblem:
    """One problem of one agreement file: where it is (``line`` 1-based, or None) and what."""

    file: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else str(self.file)
        return f"{where}: {self.message}"


class AgreementError(PrivacyError):
    """One or more agreement files are invalid; ``problems`` lists every one found.

    ``file``, ``line`` and ``message`` are those of the first problem.
    """

    def __init__(self, problems: Sequence[AgreementProblem]) -> None:
        if not problems:
            raise ValueError("an AgreementError needs at least one problem")
        self.problems: tuple[AgreementProblem, ...] = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    @property
    def file(self) -> Path:
        """The file of the first problem."""
        return self.problems[0].file

    @property
    def line(self) -> int | None:
        """The line of the first problem."""
        return self.problems[0].line

    @property
    def message(self) -> str:
        """What the first problem is."""
        return self.problems[0].message


class TransformError(PrivacyError):
    """A field rule cannot be compiled or applied; the plan is refused as a whole."""


class MissingKeyError(PrivacyError):
    """No pseudonymization key for ``recipient``; ``looked_in`` says where (never the key)."""

    def __init__(self, recipient: str, looked_in: Sequence[str]) -> None:
        self.recipient = recipient
        self.looked_in: tuple[str, ...] = tuple(looked_in)
        places = "; ".join(self.looked_in) or "no key provider configured"
        super().__init__(f"no pseudonymization key for recipient {recipient} (looked in: {places})")


class InvalidKeyError(PrivacyError):
    """A key was found but is malformed or stored where others can read it."""


class DecisionError(PrivacyError):
    """The disclosure decision cannot be made from these inputs; nothing is disclosed."""


class ParticipationError(PrivacyError):
    """A participation change or query is invalid; names the program, recipient and rule."""


class LedgerError(PrivacyError):
    """A ledger append is refused (invalid entry) or the ledger chain key is unusable."""
