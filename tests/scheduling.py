"""How scripts/test shares the suite among its pytest-xdist workers: which tests go together, and when.

The whole suite is bound by CPU on 2 cores, and a few of its units of work take minutes. Two rules
keep every worker busy to the end:

- A unit of work runs on one worker. A unit is a module's tests (as ``--dist loadfile``), so that a
  module fixture that costs much to build (a Meltano project and its runs, dbt's build, an Airflow
  run) is built once; but each test of an APART module, which shares no such fixture with the others,
  is a unit of its own, for whichever worker is free; and the tests OWN_UNIT names, whose fixtures are
  theirs alone, make a unit apart from the rest of their module.
- The units are handed out slowest first (SLOWEST_FIRST), so that no long one starts late and ends
  alone while the other workers are idle.

Neither rule changes what a test does or asserts; only how long the suite takes depends on them.
"""

from __future__ import annotations

import typing as t
from pathlib import PurePath

from xdist.scheduler import LoadScopeScheduling

if t.TYPE_CHECKING:
    import pytest

#: The modules whose units take longest, longest first (wall time under scripts/test on 2 cores:
#: pytest's --durations); the others follow in their own order. A module's tests keep their order.
SLOWEST_FIRST = (
    "test_airflow_run",
    "test_readme",
    "test_environment",
    "test_accounts",
    "test_snowflake_load",
    "test_airflow_local",
    "test_dbt",
    "test_install_elsewhere",
    "test_input_files",
    "test_pipelines",
    "test_demo",
    "test_reliability",
    "test_emulator",
    "test_signals",
    "test_concurrency",
    "test_discovery",
    "test_cli",
    "test_null_pages",
)
#: Modules whose tests share no module fixture (but a PostgreSQL cluster, quick to start): each test
#: is a unit of its own.
APART = frozenset(
    {
        "test_accounts",
        "test_airflow_run",
        "test_cli",
        "test_concurrency",
        "test_discovery",
        "test_null_pages",
        "test_reliability",
        "test_signals",
    }
)
#: Tests (by module, then function) that with their own fixtures make a unit apart from their module's.
OWN_UNIT = {
    "test_readme": frozenset({"test_each_duckdb_run_loads_the_emulators_account"}),
    "test_install_elsewhere": frozenset({"test_the_install_recipe_adds_the_tap_from_a_git_url_at_a_tag"}),
}


def slowness_rank(item: pytest.Item) -> int:
    """The place of the item's module in SLOWEST_FIRST; after them all if it is not there."""
    module = PurePath(item.nodeid.partition("::")[0]).stem
    return SLOWEST_FIRST.index(module) if module in SLOWEST_FIRST else len(SLOWEST_FIRST)


def slowest_first(items: list[pytest.Item]) -> None:
    """Sort the collected ``items`` in place by SLOWEST_FIRST (a stable sort: each module's order stays)."""
    items.sort(key=slowness_rank)


def unit_of(nodeid: str) -> str:
    """The unit of work of a test: its module, but for APART modules and OWN_UNIT tests."""
    path, _, name = nodeid.partition("::")
    module = PurePath(path).stem
    if module in APART:
        return nodeid
    if name.partition("[")[0] in OWN_UNIT.get(module, ()):
        return f"{path}::{name.partition('[')[0]}"
    return path


class UnitScheduling(LoadScopeScheduling):
    """xdist's scheduling by scope (that of ``--dist loadfile``), with :func:`unit_of` as the scope."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)
