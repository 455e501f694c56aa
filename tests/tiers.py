"""The two tiers of the suite, and the check that keeps each test in the right one.

fast: mocks (requests-mock) and the in-process emulator; no subprocess, no Meltano, PostgreSQL,
      Airflow or dbt. ``scripts/test --fast`` runs this tier alone.
e2e:  everything that starts a subprocess: the tap's command line, Meltano, PostgreSQL, Airflow, dbt,
      pip, the reliability suite's runs of the installed tap.

The tier of a test is decided here, in one place (``E2E``), not in the test modules. The suite
checks it both ways as it runs: a fast test (or a fixture it sets up) that starts a subprocess fails,
and so does an end-to-end test that started none, neither itself nor through any of its fixtures.
Every child process starts through ``subprocess.Popen`` (``subprocess.run``, asyncio's subprocesses)
or ``os.system``/``os.posix_spawn``/``os.fork``; those are what is watched.

scripts/test runs the whole suite with pytest-xdist's ``--dist loadfile``: the tests of a module run
on one worker, so a module-scoped fixture (a PostgreSQL cluster, a Meltano project, an Airflow run)
is built once; but for the modules tests/scheduling.py names, whose tests share no such fixture.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import typing as t

import pytest

#: The end-to-end tests, by module: every test of the module (None), or the tests named (the others
#: of that module are fast). Parameters do not matter: a test function is in one tier.
E2E: dict[str, frozenset[str] | None] = {
    "test_accounts": None,
    "test_airflow": None,
    "test_airflow_local": frozenset(
        {
            "test_it_runs_the_dag_and_every_task_succeeds",
            "test_postgres_holds_every_record_of_the_emulator",
            "test_the_task_ran_meltano_in_the_emulator_environment_with_its_own_state",
            "test_it_stops_the_emulator_and_the_postgres_it_started",
        }
    ),
    "test_airflow_run": None,
    "test_cli": frozenset(
        {
            "test_bad_settings_end_before_any_request",
            "test_wrong_credentials_end_with_one_line",
            "test_unreachable_token_endpoint_ends_with_one_line",
            "test_a_fatal_api_error_names_code_message_and_tracking_id",
            "test_a_token_endpoint_that_never_answers_fails_within_request_timeout",
        }
    ),
    "test_discovery": frozenset({"test_a_backfill_killed_at_any_point_resumes_with_nothing_lost"}),
    "test_dbt": frozenset(
        {
            "test_every_model_builds_and_every_dbt_test_passes",
            "test_staging_flattens_owners_participants_and_recipients",
            "test_messages_per_day",
            "test_first_response_times",
            "test_contact_center_engagements_per_queue_and_agent",
            "test_models_build_on_data_hashed_by_the_recipe_and_the_tests_catch_broken_links",
        }
    ),
    "test_demo": frozenset(
        {
            "test_demo_prints_what_it_loaded",
            "test_demo_installs_only_the_plugins_it_runs",
            "test_demo_builds_the_models_and_prints_a_mart_of_the_loaded_data",
            "test_demo_paces_the_tap_as_the_emulator_limits",
            "test_a_run_after_the_demo_starts_from_start_date",
            "test_demo_first_response_times_in_duckdb",
        }
    ),
    "test_e2e": None,
    "test_emulator": frozenset({"test_a_million_messages_are_served_in_little_memory"}),
    "test_environment": frozenset(
        {
            "test_the_first_run_loads_everything_the_emulator_holds",
            "test_the_second_run_starts_from_the_state_and_loads_what_was_added",
            "test_the_state_is_the_environments_own",
            "test_the_page_prints_the_row_counts",
            "test_the_emulator_stops",
            "test_scripts_emulator_takes_its_settings_from_the_environment",
            "test_the_throwaway_postgres_gets_every_record",
            "test_without_the_credentials_the_run_says_which_to_set",
        }
    ),
    "test_input_files": frozenset(
        {
            "test_a_missing_or_broken_config_file",
            "test_a_broken_state_file_ends_before_any_request",
            "test_a_missing_state_or_catalog_file_is_named",
            "test_the_whole_state_is_checked_before_any_record",
            "test_a_bookmark_in_the_future_is_refused",
            "test_a_pasted_state_message_is_unwrapped",
            "test_an_unknown_setting_is_named_with_the_closest_known_one",
            "test_a_run_configured_by_the_environment_alone",
            "test_a_bad_environment_value_names_its_variable",
            "test_a_rate_that_is_not_finite_is_refused_before_any_request",
        }
    ),
    "test_install_elsewhere": None,
    "test_null_pages": frozenset({"test_a_page_that_stays_null_is_one_warning_exit_0_and_the_next_run_is_not_stuck"}),
    "test_packaging": frozenset(
        {
            "test_wheel_ships_the_schemas",
            "test_installed_wheel_discovers_the_four_streams",
            "test_hub_definition_and_readme_settings_match_about",
            "test_the_tap_plugin_runs_the_locked_versions",
        }
    ),
    "test_paging": frozenset({"test_circular_page_tokens_end_the_run_with_one_line"}),
    "test_pii": None,
    "test_pipelines": None,
    "test_readme": frozenset(
        {
            "test_every_readme_meltano_command_runs",
            "test_the_settings_are_those_the_readme_sets",
            "test_the_readme_adds_a_zoom_account_inheriting_from_the_tap",
            "test_the_readme_way_to_call_meltano",
            "test_each_duckdb_run_loads_the_emulators_account",
        }
    ),
    "test_reliability": None,
    "test_signals": None,
    "test_state": frozenset({"test_an_old_layouts_partitions_are_dropped_and_every_state_stays_small"}),
    "test_snowflake": frozenset(
        {"test_example_config_uses_settings_the_target_knows", "test_every_schema_maps_to_snowflake_types_without_loss"}
    ),
    "test_snowflake_load": None,
    "test_tiers": None,
    "test_tls": frozenset(
        {
            "test_without_the_ca_bundle_the_run_ends_with_one_line_naming_the_certificate",
            "test_api_requests_with_an_access_token_fail_at_once_on_an_unverified_certificate",
            "test_a_ca_bundle_that_does_not_exist_ends_the_run_with_one_line",
        }
    ),
}
#: The markers of the tiers.
MARKERS = (
    "fast: mocks and the in-process emulator; no subprocess, Meltano, PostgreSQL, Airflow or dbt",
    "e2e: starts subprocesses: the tap's command line, Meltano, PostgreSQL, Airflow, dbt, pip",
)
#: Where a misplaced test is moved.
HOW_TO_MOVE = "its tier is set in tests/tiers.py (E2E)"


def tier_of(item: pytest.Item) -> str:
    """Return "e2e" or "fast" for a collected test, from ``E2E``."""
    module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
    if module not in E2E:
        return "fast"
    names = E2E[module]
    function = getattr(item, "originalname", item.name)
    return "e2e" if names is None or function in names else "fast"


class SubprocessInFastTierError(RuntimeError):
    """Raised in place of starting a child process from a fast-tier test."""


class _Watch:
    """Counts (and, for the fast tier, refuses) the child processes started while it is on."""

    def __init__(self) -> None:
        self.refuse = False
        self.started: list[str] = []
        self._on = 0

    @contextlib.contextmanager
    def on(self, *, refuse: bool) -> t.Iterator[list[str]]:
        """Watch while in the block; yield the list of what was started in it."""
        outer_refuse, outer_started = self.refuse, self.started
        self.refuse, self.started = refuse, []
        try:
            yield self.started
        finally:
            outer_started.extend(self.started)
            self.refuse, self.started = outer_refuse, outer_started

    def seen(self, what: str) -> None:
        """Record a child process; refuse it in the fast tier."""
        self.started.append(what)
        if self.refuse:
            raise SubprocessInFastTierError(f"a fast-tier test may not start a subprocess ({what}): {HOW_TO_MOVE}")


WATCH = _Watch()


def _describe(args: t.Any) -> str:
    if isinstance(args, (list, tuple)) and args:
        return " ".join(str(part) for part in args[:3])
    return str(args)[:200]


def install_watch() -> None:
    """Route every way of starting a child process through ``WATCH`` (for the whole session)."""
    execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def watched_execute_child(self: subprocess.Popen, args: t.Any, *rest: t.Any, **kwargs: t.Any) -> t.Any:
        WATCH.seen(_describe(args))
        return execute_child(self, args, *rest, **kwargs)

    subprocess.Popen._execute_child = watched_execute_child  # type: ignore[attr-defined]
    for name in ("system", "posix_spawn", "posix_spawnp", "fork"):
        original = getattr(os, name, None)
        if original is not None:
            setattr(os, name, _watched(name, original))


def _watched(name: str, original: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    def watched(*args: t.Any, **kwargs: t.Any) -> t.Any:
        WATCH.seen(f"os.{name} {_describe(args[:1])}")
        return original(*args, **kwargs)

    return watched


#: The fixture definitions whose setup started a child process (their tests are end-to-end).
SPAWNING_FIXTURES: set[int] = set()


def fixture_setup(fixturedef: pytest.FixtureDef[t.Any]) -> t.Generator[None, t.Any, t.Any]:
    """Around a fixture's setup: remember it if it started a child process."""
    with WATCH.on(refuse=WATCH.refuse) as started:
        result = yield
    if started:
        SPAWNING_FIXTURES.add(id(fixturedef))
    return result


def test_phase(item: pytest.Item, phase: str) -> t.Generator[None, t.Any, t.Any]:
    """Around a test's setup or call: refuse child processes in the fast tier.

    After the call of an end-to-end test: fail it if neither it nor any fixture it uses started one.
    A teardown is not watched: the last test of a module tears down the module's fixtures, its own or
    not (a fast test after the end-to-end ones stops their PostgreSQL).
    """
    fast = item.get_closest_marker("fast") is not None
    if phase == "teardown":
        return (yield)
    with WATCH.on(refuse=fast) as started:
        result = yield
    if fast and started:
        pytest.fail(
            f"{item.nodeid} is in the fast tier but started a subprocess ({started[0]}): {HOW_TO_MOVE}", pytrace=False
        )
    if not fast and phase == "call" and not started and not _fixtures_started_one(item):
        pytest.fail(f"{item.nodeid} is in the e2e tier but started no subprocess: {HOW_TO_MOVE}", pytrace=False)
    return result


def _fixtures_started_one(item: pytest.Item) -> bool:
    """Whether a fixture the test uses started a child process (pytest keeps no public way to list them)."""
    definitions = item._fixtureinfo.name2fixturedefs.values()  # type: ignore[attr-defined]
    return any(id(d) in SPAWNING_FIXTURES for defs in definitions for d in defs)
