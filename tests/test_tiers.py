"""The tiers' check (tests/tiers.py), run on small suites in a pytest of their own."""

from __future__ import annotations

import typing as t

import pytest

from tests.projects import ROOT

pytest_plugins = ["pytester"]

#: The inner suite's conftest: this suite's own hooks.
CONFTEST = """
from tests.conftest import (
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_fixture_setup,
    pytest_runtest_call,
    pytest_runtest_setup,
    pytest_runtest_teardown,
)
"""
SPAWN = "import subprocess\nimport pytest\n"


def run(pytester: pytest.Pytester, **modules: str) -> t.Any:
    """Run ``modules`` (name: source) in a pytest of their own, with this suite's hooks."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(**{name: SPAWN + source for name, source in modules.items()})
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "-rfE")


@pytest.fixture(autouse=True)
def this_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def test_a_fast_test_that_starts_a_subprocess_fails_naming_it(pytester: pytest.Pytester) -> None:
    # a module tests/tiers.py does not name is fast
    result = run(
        pytester,
        test_some_module="""
def test_plain():
    assert True

def test_spawns():
    subprocess.run(["true"], check=False)

@pytest.fixture(scope="module")
def server():
    subprocess.run(["true"], check=False)

def test_through_a_fixture(server):
    pass
""",
    )
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(["FAILED test_some_module.py::test_spawns - tests.tiers.SubprocessInF*"])
    result.stdout.fnmatch_lines(["ERROR test_some_module.py::test_through_a_fixture - tests.tiers.SubprocessInF*"])
    result.stdout.fnmatch_lines(
        ["E * a fast-tier test may not start a subprocess (true): its tier is set in tests/tiers.py*"]
    )


def test_an_e2e_test_that_starts_no_subprocess_fails(pytester: pytest.Pytester) -> None:
    # test_e2e is an end-to-end module in tests/tiers.py
    result = run(
        pytester,
        test_e2e="""
@pytest.fixture(scope="module")
def server():
    subprocess.run(["true"], check=False)

def test_spawns():
    subprocess.run(["true"], check=False)

def test_first_user_of_the_fixture(server):
    pass

def test_second_user_of_the_fixture(server):
    pass

def test_nothing():
    assert True
""",
    )
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_nothing is in the e2e tier but started no subprocess*"])
