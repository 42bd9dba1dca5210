"""In CI a skip that is not on the allow-list fails the run; an allowed one is listed."""

from __future__ import annotations

import pytest

from tests import skips

pytest_plugins = ["pytester"]
PLUGIN = ("-p", "tests.skips", "-W", "ignore::pytest.PytestAssertRewriteWarning")

PLANTED = """
import pytest

pytest.importorskip("module_that_is_not_there") if {module_skip} else None


def test_skipped_in_call():
    pytest.skip("gpg is missing")


@pytest.mark.skipif(True, reason="no server")
def test_skipped_by_marker():
    pass


@pytest.fixture
def needs_tool():
    pytest.skip("tool absent")


def test_skipped_in_setup(needs_tool):
    pass


def test_allowed():
    pytest.skip("allowed here")


@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_failure():
    assert False


def test_passes():
    pass
"""


@pytest.fixture
def planted(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setitem(skips.ALLOWED, "test_planted.py::test_allowed", "proves nothing less")
    pytester.makepyfile(test_planted=PLANTED.format(module_skip=False))
    return pytester


def test_in_ci_every_skip_not_allowed_fails(
    planted: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = planted.runpytest(*PLUGIN)
    result.assert_outcomes(passed=1, failed=1, errors=2, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "*skips allowed in CI*",
            "test_planted.py::test_allowed: proves nothing less",
            "*FAILED test_planted.py::test_skipped_in_call*gpg is missing*not allowed*",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_outside_ci_a_skip_stays_a_skip(
    planted: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = planted.runpytest(*PLUGIN)
    result.assert_outcomes(passed=1, skipped=4, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


def test_in_ci_a_module_skipped_at_import_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(test_planted=PLANTED.format(module_skip=True))
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*module_that_is_not_there*not allowed*"])
    assert result.ret != pytest.ExitCode.OK


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("TRUE", True), ("", False), ("false", False)],
)
def test_ci_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("CI", value)
    assert skips.in_ci() is expected


def test_the_allowed_skip_in_the_suite_matches_its_test_id() -> None:
    nodeid = (
        "tests/privacy/test_ledger.py::"
        "test_when_lock_held_then_second_writer_waits_for_commit[sqlite]"
    )
    assert skips.allowed_reason(nodeid)
    assert skips.allowed_reason(nodeid.replace("sqlite", "postgresql")) is None
