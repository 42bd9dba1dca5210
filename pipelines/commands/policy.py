"""``datashare policy``: check the agreement files, and explain one in plain words."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, NamedTuple

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from pipelines.commands.options import DEFAULT_URL, DatabaseUrl
from pipelines.db import database_url as resolve_url
from pipelines.db import make_engine
from pipelines.settings import load_settings
from privacy.agreements import (
    Agreement,
    LegalBasis,
    OutputLevel,
    StatementHandling,
    check_agreements,
    load_agreement,
)
from privacy.errors import AgreementError
from privacy.fields import CATALOG
from privacy.transforms import get_transform
from schemas import Recipient
from schemas.codes import RecordCategory

app = typer.Typer(
    help="Check data-sharing agreements; explain one in plain words.", no_args_is_help=True
)

AgreementsDir = Annotated[
    Path | None,
    typer.Option(
        "--agreements",
        help="Folder of agreement files [default: config/agreements].",
        file_okay=False,
    ),
]


class RecipientRow(NamedTuple):
    """What the registry says about a recipient."""

    name: str
    category: str
    state: str | None = None


class RegistryUnreadable(Exception):
    """The database exists but its recipients cannot be read."""


@app.command()
def check(agreements: AgreementsDir = None, database_url: DatabaseUrl = DEFAULT_URL) -> None:
    """Validate every agreement file; print each problem as file:line: message."""
    out, err = Console(soft_wrap=True, highlight=False), Console(stderr=True, highlight=False)
    folder = agreements or load_settings(database_url).agreements_dir
    try:
        registry = _recipients(database_url)
    except RegistryUnreadable as exc:
        err.print(f"[red]cannot read the recipients registry:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    if registry is None:
        err.print("[dim]recipients not checked: the database has no recipients[/]")
    found, problems = check_agreements(folder, recipients=registry)
    for problem in problems:
        out.print(_shown(problem), markup=False)
    if problems:
        err.print(f"[red]{len(problems)} problem(s)[/] in {escape(str(folder))}")
        raise typer.Exit(1)
    out.print(f"{len(found)} agreement(s) in {escape(str(folder))}: all valid")


@app.command()
def explain(
    agreement: Annotated[str, typer.Argument(help="An agreement id (or the path of its file).")],
    agreements: AgreementsDir = None,
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """Say in plain words what an agreement lets leave, to whom, why and for which children."""
    out = Console(soft_wrap=True, highlight=False)
    folder = agreements or load_settings(database_url).agreements_dir
    path = (
        Path(agreement) if agreement.endswith((".yaml", ".yml")) else folder / f"{agreement}.yaml"
    )
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "none"
        out.print(f"No agreement {escape(agreement)} in {escape(str(folder))} (known: {known})")
        raise typer.Exit(2)
    try:
        loaded = load_agreement(path)
    except AgreementError as exc:
        for problem in exc.problems:
            out.print(_shown(problem), markup=False)
        raise typer.Exit(1) from None
    try:
        registry = _recipients(database_url) or {}
    except RegistryUnreadable:
        registry = {}
    for line in explanation(loaded, registry.get(loaded.recipient), today=dt.date.today()):
        out.print(line, markup=False)


def explanation(a: Agreement, recipient: RecipientRow | None, *, today: dt.date) -> list[str]:
    """The plain-words explanation of ``a``, one printed line per item."""
    who = a.recipient + (f" ({recipient.name}, {_words(recipient.category)})" if recipient else "")
    ends = f"through {a.expires}" if a.expires else "with no end date"
    overdue = "  OVERDUE: review it before the next run" if today > a.review_due else ""
    lines = [
        f"Agreement {a.id}",
        f"Recipient: {who}",
        f"Basis: {a.legal_basis.plain} ({a.legal_basis.citation})",
        f"Purpose: {' '.join(a.purpose.split())}",
        "Purpose code: "
        + (
            f"{a.purpose_code.value} ({_words(a.purpose_code.value)})"
            + (
                "; a consent counts only if it names this purpose (45 CFR 1303.22(a))"
                if a.legal_basis is LegalBasis.CONSENT
                else ""
            )
            if a.purpose_code is not None
            else "none"
        ),
        f"In force: from {a.effective} {ends}",
        f"Review due: {a.review_due} (last reviewed {a.last_reviewed}; agreements are reviewed "
        f"every year, 45 CFR 1303.22(d)){overdue}",
        "Suspensions:" + ("" if a.suspensions else " none"),
        *(
            f"  - from {s.start} {f'to {s.end}' if s.end else 'until further notice'}: "
            f"{' '.join(s.reason.split())}"
            for s in a.suspensions
        ),
        "Destruction: " + (" ".join(a.destruction.split()) if a.destruction else "no terms"),
    ]
    if a.idea_exception:
        lines.append(f"IDEA exception: {' '.join(a.idea_exception.split())}")
    if a.output is OutputLevel.AGGREGATE:
        lines.append(
            f"Output: counts only, no child rows; any count below {a.min_cell_size} is hidden, "
            "and so is any count from which a hidden one could be worked out"
        )
    else:
        lines.append("Output: one row per child")
    lines.append(
        "Parent statements: "
        + (
            "a parent's statement on a field travels with that field (45 CFR 1303.24(c))"
            if a.parent_statements is StatementHandling.CARRY
            else "a field with a parent's statement on file is held back"
        )
    )
    transformed = [n for n, spec in a.leaving().items() if spec.name != "keep"]
    if a.parent_statements is StatementHandling.CARRY and transformed:
        lines.append(
            "  On fields sent transformed ("
            + ", ".join(_words(n) for n in transformed)
            + "): "
            + (
                "the statement travels with the transformed value"
                if a.statements_on_transformed_fields is StatementHandling.CARRY
                else "the field is held back for a child with a statement on it, since the "
                "statement could reveal the exact value"
            )
        )
    if a.delete_on_revocation:
        lines.append("On revocation: the recipient is asked to delete what it received")
    if a.delete_out_of_scope:
        lines.append("A child who no longer qualifies: the recipient is asked to delete it too")
        lines.append(
            "A program that stops sharing (participation withdrawn, AIAN opt-in ended or "
            "incomplete, agreement expired or lapsed): the recipient is asked to delete every "
            "child of it that it holds (program_out_of_scope); nothing else of it is sent"
        )
        if a.output is OutputLevel.RECORD:
            lines.append(
                "An AIAN program whose opt-in narrows to aggregate outputs: the recipient is "
                "asked to delete every child record of it that it holds (program_out_of_scope); "
                "its aggregate tables still go where the destination takes them"
            )
    leaving = a.leaving()
    verb = "Counts are broken down by" if a.output is OutputLevel.AGGREGATE else "What leaves"
    lines.append(f"{verb} ({len(leaving)} field(s)):")
    for name, spec in leaving.items():
        how = get_transform(spec.name).explain(CATALOG[name], spec.params)
        lines.append(f"  - {_words(name)}, {how}")
    lines.append("What never leaves:")
    dropped = [n for n, spec in a.fields.items() if spec.name == "drop"]
    if dropped:
        lines.append(f"  - named and dropped: {', '.join(_words(n) for n in dropped)}")
    unnamed = [n for n in CATALOG if n not in a.fields]
    lines.append(f"  - not named: {', '.join(_words(n) for n in unnamed) or 'none'}")
    lines.append("Which children qualify:")
    lines.extend(f"  {sentence}" for sentence in _who_qualifies(a, recipient))
    return lines


def _who_qualifies(a: Agreement, recipient: RecipientRow | None = None) -> list[str]:
    leaving = a.leaving()
    disability = [n for n in leaving if CATALOG[n].category is RecordCategory.DISABILITY]
    if a.legal_basis is LegalBasis.CONSENT:
        needed = {c.value for c in a.record_categories}
        needed |= {CATALOG[n].category.value for n in leaving}
        needed.discard(RecordCategory.DISABILITY.value)
        order = [c.value for c in RecordCategory if c.value in needed]
        purpose = a.purpose_code.value if a.purpose_code else "(none: no consent can match)"
        rule = [
            f"Children with a signed and dated written consent from a parent naming "
            f"{a.recipient} (or a class of recipients it belongs to), covering "
            f"{', '.join(order)}, not expired and not revoked on the run date.",
            f"The consent must name the purpose {purpose}, and its signer must be a parent or "
            "guardian of this child on the day it was signed (not a sibling's guardian or "
            "another contact; 45 CFR 1303.22(a), 1305.2).",
            "Several valid consents may together cover these categories: each category must be "
            "named by at least one of them.",
        ]
        if disability:
            rule.append(
                f"Disability fields ({', '.join(_words(n) for n in disability)}) leave only "
                "when a valid consent also names disability."
            )
    elif a.legal_basis is LegalBasis.SCHOOL_ENROLLMENT_NOTICE:
        rule = [
            f"Children whose parents were told in writing at least {a.notice_days} days before "
            f"the run date that these records go to {a.recipient} for enrollment or transfer, "
            "and who did not refuse."
        ]
    else:
        rule = [
            f"Every child of a participating program; no consent is needed "
            f"({a.legal_basis.citation})."
        ]
        if disability:
            rule.append(
                f"Disability fields ({', '.join(_words(n) for n in disability)}) leave under the "
                "IDEA exception above."
            )
    if RecordCategory.TRIBAL_AFFILIATION in {CATALOG[n].category for n in leaving}:
        rule.append(
            "Tribal affiliation leaves only for children of an American Indian and Alaska Native "
            "program whose active opt-in does not exclude it; never for other programs."
        )
    rule.append(
        f"Only programs registered as participating with {a.recipient} on the run date; an "
        "American Indian and Alaska Native program only with its own active opt-in "
        "(45 CFR 1302.53(b)(4))."
    )
    if recipient is not None:
        rule.append(
            f"Only programs in {recipient.state}, the recipient's jurisdiction."
            if recipient.state
            else "The recipient has no state on record: no program's data goes to it."
        )
    else:
        rule.append(
            "Only programs in the recipient's state (its jurisdiction in the registry); a "
            "recipient without a state receives nothing."
        )
    return rule


def _words(name: str) -> str:
    return name.replace("_", " ")


def _shown(problem: object) -> str:
    """``file:line: message`` with the file relative to the working directory when inside it."""
    text = str(problem)
    cwd = f"{Path.cwd()}/"
    return text.removeprefix(cwd)


def _recipients(url: str) -> dict[str, RecipientRow] | None:
    """The recipients registry, or None when there is no database or it holds no recipients."""
    url = resolve_url(url)
    parsed = make_url(url)
    on_disk = parsed.drivername.startswith("sqlite") and parsed.database not in (
        None,
        "",
        ":memory:",
    )
    if on_disk and not Path(str(parsed.database)).exists():
        return None
    engine = make_engine(url)
    try:
        if not inspect(engine).has_table(Recipient.__tablename__):
            return None
        with engine.connect() as connection:
            rows = connection.execute(
                select(Recipient.code, Recipient.name, Recipient.category, Recipient.state)
            ).all()
    except SQLAlchemyError as exc:
        raise RegistryUnreadable(type(exc).__name__) from exc
    finally:
        engine.dispose()
    if not rows:
        return None
    return {code: RecipientRow(name, str(category), state) for code, name, category, state in rows}
