"""The reliability suite (bench/fault_suite.py) against the emulator: nothing lost, nothing leaked."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fault_suite import SCENARIOS, scenario

SESSIONS = 30


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_loses_nothing_and_leaks_nothing(name: str, tmp_path: Path) -> None:
    outcome = scenario(name, SESSIONS, tmp_path)

    assert outcome.expected > 500
    assert outcome.lost == 0
    assert outcome.files_expected > 50
    assert outcome.files_lost == 0
    assert outcome.secrets_found == []
    assert outcome.invalid == 0
    for run in outcome.runs:
        assert "Traceback" not in run.stderr
    codes = [run.returncode for run in outcome.runs]
    if name == "faults":
        assert codes == [0]
        assert set(outcome.stats["faults"]) == {"http_500", "drop", "truncated", "file_500"}
        assert outcome.retries >= sum(outcome.stats["faults"].values())
        # tokens revoked after 100 requests (and expiring after 5 s) were renewed during the run
        api_requests = outcome.stats["total_requests"] - outcome.stats["requests"].get("file_download", 0)
        assert api_requests > 200
        assert outcome.stats["tokens_issued"] >= max(2, api_requests // 100)
    elif name == "qps-429":
        assert codes == [0]
        assert outcome.stats["statuses"]["429"] > 10
    elif name == "daily-cap":
        assert codes == [1, 0]
        errors = [line for line in outcome.runs[0].stderr.splitlines() if line.startswith("tap-zoom-sms: error:")]
        assert len(errors) == 1
        assert "daily limit for Heavy requests was reached; it resets at" in errors[0]
    elif name == "sigkill":
        assert codes == [-9, -9, 0]
    elif name == "sigterm":
        assert codes == [143, 143, 0]
        for run in outcome.runs[:2]:
            assert "interrupted by SIGTERM" in run.stderr
            assert not run.cut_short
    elif name == "late-data":
        assert codes == [0, 0]
    elif name in ("broken-text", "malformed"):
        assert codes == [0]
        served, reported = outcome.stats_extra["keyless messages served, reported"]
        assert reported == served
        assert (served > 0) == (name == "malformed")
        repaired = "texts repaired" if name == "broken-text" else "values coerced"
        assert repaired in outcome.runs[0].stderr.split("records from Zoom repaired:")[1]
    elif name == "long-names":
        assert codes == [0]
    elif name == "null-records":
        assert codes == [0]
        routes = ("sessions", "session_details", "contact_center_sms")
        assert {f"malformed_page {route}" for route in routes} == set(outcome.stats["faults"])
        assert outcome.retries == sum(outcome.stats["faults"].values())  # each null page read once more
        assert "was still malformed" not in outcome.runs[0].stderr
    else:
        assert codes == [1, 0]
        assert "Zoom's page tokens went round in a circle on GET /v2/phone/sms/sessions/" in outcome.runs[0].stderr
