"""In CI (``CI=true``) a skipped test is a failure unless it is allowed here, with a reason.

A skip hides a promise the suite no longer proves (gpg missing, a module not importable, a
server down). Locally a skip stays a skip; in CI every skip must be on :data:`ALLOWED` (test
id, ``fnmatch`` patterns welcome) or it fails the test, and the allowed ones are listed with
their reasons at the end of the run. ``tests/conftest.py`` installs these hooks.
"""

from __future__ import annotations

import os
from fnmatch import fnmatchcase

import pytest

# test id (relative to the repository, fnmatch pattern) -> why skipping it proves nothing less
ALLOWED: dict[str, str] = {
    "tests/privacy/test_ledger.py::test_when_lock_held_then_second_writer_waits_for_commit"
    "[[]sqlite[]]": "the advisory lock is PostgreSQL's; SQLite serializes writers by its file "
    "lock, and the same test runs on PostgreSQL",
}


def in_ci() -> bool:
    """Whether this run is CI's (``CI`` set to true, 1 or yes)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def allowed_reason(nodeid: str) -> str | None:
    """The reason ``nodeid`` may be skipped in CI, or None."""
    return next((why for pattern, why in ALLOWED.items() if fnmatchcase(nodeid, pattern)), None)


def _refuse(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Turn a skip that is not allowed into a failure that says why."""
    if not report.skipped or hasattr(report, "wasxfail") or not in_ci():
        return
    if allowed_reason(report.nodeid) is not None:
        return
    longrepr = report.longrepr
    said = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"skipped in CI ({said}) and not allowed: fix the cause, or add the test to "
        "ALLOWED in tests/skips.py with a reason"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """A test skipped in setup or call."""
    report = yield
    _refuse(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    """A module skipped as a whole (``importorskip`` or ``skip(allow_module_level=True)``)."""
    report = yield
    _refuse(report)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List the skips CI allowed, with their reasons."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if not hasattr(r, "wasxfail")]
    if not (in_ci() and skipped):
        return
    terminalreporter.write_sep("-", "skips allowed in CI (tests/skips.py)")
    for report in skipped:
        terminalreporter.write_line(f"{report.nodeid}: {allowed_reason(report.nodeid)}")
