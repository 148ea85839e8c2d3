"""The alert rules in helm/powerplane/files/alerts/powerplane.rules.yaml:
`promtool check rules` accepts the file, `promtool test rules` runs the unit
tests in tests/alerts/powerplane.rules.test.yaml (series in, alerts out,
including times and series for which an alert must NOT fire), every alert is
tested both ways, every metric a rule reads is one the scheduler or an agent
exports, and every alert has a severity and says what and where.

promtool comes from Debian's `prometheus` package; without it the promtool
tests skip, saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.exported_metrics import exported_metric_names
from tests.integration.helm_support import ALERT_RULES, REPO, promql_metric_names, unknown_metrics

RULE_TESTS = REPO / "tests" / "alerts" / "powerplane.rules.test.yaml"
SEVERITIES = {"critical", "warning"}
# Rules on Prometheus' own `up` series (scrape health), not on exported metrics.
SCRAPE_METRICS = {"up"}


def _promtool() -> str:
    found = os.environ.get("POWERPLANE_PROMTOOL") or shutil.which("promtool") or ("/usr/bin/promtool" if os.access("/usr/bin/promtool", os.X_OK) else None)
    if not found:
        pytest.skip("promtool not found: install Debian's prometheus package (scripts/setup.sh does where apt is available)")
    return found


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_promtool(), *args], capture_output=True, text=True, timeout=120, check=False, cwd=REPO)


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERT_RULES.read_text())["groups"] for rule in group["rules"]]


def _alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for rule in _rules() if "alert" in rule}


def test_promtool_check_rules():
    result = _run("check", "rules", str(ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout, result.stdout


def test_promtool_unit_tests():
    result = _run("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_use_the_chart_rule_file():
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert [(RULE_TESTS.parent / f).resolve() for f in tests["rule_files"]] == [ALERT_RULES.resolve()]


def test_every_alert_is_tested_firing_and_not_firing():
    """For each alert, some unit test expects it to fire and some expects it
    not to (a negative case: a time, or series, for which it must stay quiet)."""
    firing, quiet = set(), set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(_alerts())
    assert alerts - firing == set(), f"never expected to fire: {alerts - firing}"
    assert alerts - quiet == set(), f"never expected to stay quiet: {alerts - quiet}"
    assert (firing | quiet) <= alerts, f"tests name unknown alerts: {(firing | quiet) - alerts}"


def test_rules_read_only_exported_metrics():
    exported = exported_metric_names()
    problems = []
    for rule in _rules():
        names = promql_metric_names(rule["expr"]) - SCRAPE_METRICS
        if not names and not (promql_metric_names(rule["expr"]) & SCRAPE_METRICS):
            problems.append(f"{rule['alert']}: no metric found in {rule['expr']!r}")
        for name in sorted(unknown_metrics(names, exported)):
            problems.append(f"{rule['alert']}: {name} is not exported ({rule['expr']!r})")
    assert not problems, "\n".join(problems)


def test_alerts_have_severity_summary_and_description():
    for name, rule in _alerts().items():
        assert name.startswith("Powerplane"), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert set(rule["annotations"]) == {"summary", "description"}, name
        assert all(text.strip() for text in rule["annotations"].values()), name
        # Alerts on per-site metrics say which site.
        if promql_metric_names(rule["expr"]) - SCRAPE_METRICS:
            for key, text in rule["annotations"].items():
                assert "{{ $labels.site }}" in text, f"{name}: {key} does not name the site"
