"""examples/ci/github-actions.yml only uses provision commands and flags that exist: every
`provision <command> --flag` in its run steps is checked against that command's --help."""

from __future__ import annotations

import re

import yaml

from tests.conftest import EXAMPLES

WORKFLOW = EXAMPLES / "ci" / "github-actions.yml"


def provision_calls() -> list[tuple[str, list[str]]]:
    """(command, flags) of every `provision ...` invocation in the workflow's run steps."""
    doc = yaml.safe_load(WORKFLOW.read_text())
    calls = []
    for job in doc["jobs"].values():
        for step in job["steps"]:
            script = re.sub(r"\\\n\s*", " ", step.get("run", ""))  # join continued lines
            for m in re.finditer(r"(?<![\w-])provision\s+([a-z]+)([^|;&\n]*)", script):
                calls.append((m.group(1), re.findall(r"(?<!\S)--[a-z][a-z-]*", m.group(2))))
    return calls


def test_the_workflow_is_valid_yaml_with_both_jobs():
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert set(doc["jobs"]) == {"plan", "apply"}
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"pull_request", "push"} <= set(triggers)
    assert doc["jobs"]["apply"]["concurrency"]["cancel-in-progress"] is False


def test_every_provision_flag_in_the_workflow_exists(run_cli):
    calls = provision_calls()
    commands = {command for command, _ in calls}
    assert commands == {"plan", "preview", "up", "verify"}
    helps = {cmd: run_cli(cmd, "--help", check=True).stdout for cmd in commands}
    used = set()
    for command, flags in calls:
        for flag in flags:
            assert flag in helps[command], f"`provision {command}` has no {flag}"
            used.add(flag)
    assert {"--output", "--offline", "--yes"} <= used


def _apply_steps() -> list[dict]:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]["apply"]["steps"]


def test_no_provision_exit_status_is_hidden():
    """`|| true` after a provision command would turn a failed verify into a green job."""
    for step in _apply_steps() + yaml.safe_load(WORKFLOW.read_text())["jobs"]["plan"]["steps"]:
        script = re.sub(r"\\\n\s*", " ", step.get("run", ""))
        for line in script.splitlines():
            if re.search(r"(?<![\w-])provision\s", line):
                assert "|| true" not in line and "||true" not in line, line
        if "provision " in script and "|" in script:
            assert "set -o pipefail" in script, step["name"]


def test_only_reports_leave_the_runner():
    """The uploaded artifact holds the verify reports and per-host tool outputs, never
    ansible-runner's run records (artifacts/); the state sync leaves run records and private
    keys on the runner; the offline verify judges hosts/."""
    steps = {s.get("name", s.get("uses")): s for s in _apply_steps()}
    upload = next(s for s in steps.values() if s.get("uses", "").startswith(
        "actions/upload-artifact"))
    assert upload["with"]["path"] == "verify-report/"
    report = steps["Verify report"]["run"]
    assert "artifacts" not in report
    assert re.search(r'provision verify --offline "\$run/hosts"', report)
    copied = re.findall(r"cp (?:-r )?(\S+)", report)
    assert copied == ['"$run/verify-report.json"', '"$run/hosts"']
    save = re.sub(r"\\\n\s*", " ", steps["Save provision's state"]["run"])
    for excluded in ('--exclude "runs/*"', '--exclude "ssh/id_*"'):
        assert excluded in save
    assert "id_" not in re.sub(r'--exclude "[^"]*"', "", save)
