"""What a playbook run may see and leave behind, with real ansible-playbook runs on localhost.

- the operator's secrets (cloud keys, BMC password, Pulumi passphrase) never reach the
  playbook's environment nor any file of the run (ansible-runner copies the environment it is
  given into artifacts/<uuid>/command);
- extra variables are not on any command line (`ps`) and their file is gone after the run;
- a provision process that dies mid-run takes the playbook and its children with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from provision.converge import inheritable, run_environment, run_playbook

REPO = Path(__file__).resolve().parents[2]
CANARIES = {
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-7f3a",
    "AWS_SESSION_TOKEN": "canary-aws-session-91bc",
    "BMC_PASSWORD": "canary-bmc-password-5d2e",
    "PULUMI_CONFIG_PASSPHRASE": "canary-pulumi-passphrase-c0de",
    "GOOGLE_OAUTH_ACCESS_TOKEN": "canary-gcp-token-44aa",
    "ANSIBLE_BECOME_PASSWORD": "canary-become-0b0b",
}
JOB_CANARY = "canary-job-command-e1e1"


def _project(tmp_path: Path, tasks: str) -> tuple[Path, Path]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "play.yml").write_text(textwrap.dedent("""\
        - name: Isolation probe
          hosts: all
          gather_facts: false
          tasks:
        """) + textwrap.indent(textwrap.dedent(tasks), "    "))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(textwrap.dedent(f"""\
        all:
          hosts:
            probe:
              ansible_connection: local
              ansible_python_interpreter: {sys.executable}
        """))
    return project, inventory


def test_allow_list_names() -> None:
    for name in CANARIES:
        assert not inheritable(name), name
    for name in ("PATH", "HOME", "LANG", "LC_ALL", "SSH_AUTH_SOCK", "ANSIBLE_CONFIG"):
        assert inheritable(name), name
    prepared = {"PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "x", "ANSIBLE_FORKS": "8",
                "RUNNER_OMIT_EVENTS": "False"}
    env = run_environment(prepared, {"ANSIBLE_FORKS": "8"},
                          operator={"PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "x"})
    assert env == {"PATH": "/bin", "ANSIBLE_FORKS": "8", "RUNNER_OMIT_EVENTS": "False"}


def test_secrets_stay_out_of_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    project, inventory = _project(tmp_path, """\
        - name: Environment the playbook process has
          ansible.builtin.command: env
          register: probe_env
          changed_when: false
        - name: Every process's command line while the run is on
          ansible.builtin.command: ps -eo args
          register: probe_ps
          changed_when: false
        - name: The extra variable arrived
          ansible.builtin.assert:
            that: job_command == expected_job
            quiet: true
        - name: Keep what the probes saw
          ansible.builtin.copy:
            dest: "{{ out_dir }}/seen.txt"
            content: "{{ probe_env.stdout }}\\n---\\n{{ probe_ps.stdout }}\\n"
            mode: "0600"
        """)
    run_dir = tmp_path / "run"
    result = run_playbook("play.yml", inventory, run_dir, nodes=1,
                          fact_cache=tmp_path / "facts", playbooks=project,
                          extravars={"job_command": JOB_CANARY, "expected_job": JOB_CANARY,
                                     "out_dir": str(tmp_path)})
    assert result.ok, result.failures
    seen = (tmp_path / "seen.txt").read_text()
    env_part, ps_part = seen.split("\n---\n")
    assert "PATH=" in env_part  # the probe did read the environment
    for value in CANARIES.values():
        assert value not in env_part
    assert "ansible-playbook" in ps_part  # the probe did see the run's own processes
    assert JOB_CANARY not in ps_part
    leaks = []
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            leaks += [f"{path}: {n}" for n, v in CANARIES.items() if v.encode() in data]
    assert not leaks
    command = json.loads(next(run_dir.glob("artifacts/*/command")).read_text())
    args = command["command"]
    assert JOB_CANARY not in json.dumps(command)
    assert args[args.index("-e") + 1].startswith("@")  # the variables went by file
    assert not list((run_dir / "tmp").glob("extravars-*"))  # removed after the run


def test_killed_provision_takes_the_playbook_with_it(tmp_path: Path) -> None:
    """SIGKILL the process running the playbook: its ansible-playbook and the task's command
    end too (they used to run on, unlocked, against the nodes)."""
    marker = "317.25"  # a unique sleep length to find the task's process by
    project, inventory = _project(tmp_path, f"""\
        - name: A long task
          ansible.builtin.command: sleep {marker}
          changed_when: false
        """)
    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""\
            from pathlib import Path
            from provision.converge import run_playbook
            run_playbook("play.yml", Path({str(inventory)!r}), Path({str(tmp_path / 'run')!r}),
                         nodes=1, fact_cache=Path({str(tmp_path / 'facts')!r}),
                         playbooks=Path({str(project)!r}))
            """)],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)

    def running(needle: str) -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if needle.encode() in (proc / "cmdline").read_bytes():
                        found.append(int(proc.name))
                except OSError:
                    pass
        return found

    deadline = time.monotonic() + 120
    while not running(f"sleep\0{marker}"):
        assert driver.poll() is None, "the playbook ended before its long task started"
        assert time.monotonic() < deadline, "the long task never started"
        time.sleep(0.2)
    assert running(str(inventory))  # ansible-playbook is up
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=10)
    deadline = time.monotonic() + 60
    while running(f"sleep\0{marker}") or running(str(inventory)):
        if time.monotonic() > deadline:
            for pid in running(f"sleep\0{marker}") + running(str(inventory)):
                os.kill(pid, signal.SIGKILL)
            pytest.fail("the playbook outlived the provision process that ran it")
        time.sleep(0.2)
