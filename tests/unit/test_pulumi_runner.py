"""The Automation API runner, tested up to the `pulumi` CLI boundary (no CLI can run here)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from provision.backends.aws import AwsBackend
from provision.backends.base import ClusterSpec, NodeSpec, SshAccess
from provision.backends.pulumi_runner import (
    PASSPHRASE_FILE_ENV,
    DestroyOutcome,
    Plugin,
    PulumiFailed,
    PulumiRunner,
    PulumiUnavailable,
    StackProgram,
    _event_sink,
    advice_for,
)
from provision.catalog.offerings import Offering
from provision.errors import InputError

FAKE_CLI = Path(__file__).resolve().parents[1] / "fixtures" / "cloud" / "fake_pulumi.py"
TARGET = StackProgram("provision-aws", "demo", lambda: None, {"aws:region": "us-east-1"},
                      (Plugin("aws", "7.51.1"),))


def bare_env(tmp_path: Path) -> dict[str, str]:
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    return {"PATH": str(empty), "HOME": str(tmp_path / "home")}


def test_missing_cli_says_what_to_install(tmp_path):
    runner = PulumiRunner(tmp_path / "state", environ=bare_env(tmp_path))
    with pytest.raises(PulumiUnavailable) as info:
        runner.cli()
    text = str(info.value)
    assert "curl -fsSL https://get.pulumi.com | sh" in text
    assert "pulumi plugin install resource aws v7.51.1" in text
    assert "--offline" in text and info.value.exit_code == 1


def test_backend_stops_at_the_missing_cli_before_any_network_call(tmp_path):
    def no_network() -> str:
        raise AssertionError("operator IP detection must not run when the CLI is missing")

    runner = PulumiRunner(tmp_path / "state", environ=bare_env(tmp_path))
    backend = AwsBackend(tmp_path / "state", runner=runner, detect_cidr=no_network)
    o = Offering("aws", "g6e.xlarge", "us-east-1", "use1-az1", "L40S", 1, 4, 32, 1.8, 0.7,
                 "pcie", 20, False)
    spec = ClusterSpec("demo", (NodeSpec("demo-1", "l40s-48gb"),),
                       SshAccess("ubuntu", "ssh-ed25519 AAAA x", "/k"), offering=o)
    with pytest.raises(PulumiUnavailable):
        backend.apply(spec, lambda m: None)
    with pytest.raises(PulumiUnavailable):
        backend.destroy("demo", lambda m: None)


def test_cli_found_in_the_installers_directory(tmp_path):
    env = bare_env(tmp_path)
    binary = Path(env["HOME"]) / ".pulumi" / "bin" / "pulumi"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert PulumiRunner(tmp_path / "s", environ=env).cli() == str(binary)


def test_local_file_backend_and_generated_passphrase(tmp_path):
    state = tmp_path / "cluster"
    runner = PulumiRunner(state, environ=bare_env(tmp_path))
    assert runner.backend_url == (state / "pulumi" / "backend").resolve().as_uri()
    env, provider = runner.workspace_env()
    assert provider == "passphrase"
    pw_file = Path(env[PASSPHRASE_FILE_ENV])
    assert pw_file == state / "pulumi" / "passphrase"
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    secret = pw_file.read_text().strip()
    assert len(secret) >= 32 and secret not in json.dumps(env)
    assert env["PULUMI_BACKEND_URL"] == runner.backend_url
    assert runner.workspace_env()[0][PASSPHRASE_FILE_ENV] == str(pw_file)  # reused, not rotated
    assert pw_file.read_text().strip() == secret
    other = StackProgram("provision-gcp", "demo")
    assert runner.work_dir(TARGET) != runner.work_dir(other)  # one workspace per stack


def test_remote_backends_by_url(tmp_path, monkeypatch):
    env = bare_env(tmp_path)
    with pytest.raises(InputError, match="needs PULUMI_CONFIG_PASSPHRASE"):
        PulumiRunner(tmp_path, backend_url="s3://bucket/provision", environ=env).workspace_env()
    runner = PulumiRunner(tmp_path, backend_url="gs://bucket/p",
                          environ={**env, "PULUMI_CONFIG_PASSPHRASE": "team-secret"})
    extra, provider = runner.workspace_env()
    assert provider == "passphrase" and PASSPHRASE_FILE_ENV not in extra
    assert "team-secret" not in json.dumps(extra)  # inherited by the CLI, never copied
    cloud = PulumiRunner(tmp_path, backend_url="https://api.pulumi.com", environ=env)
    assert cloud.workspace_env()[1] is None  # Pulumi Cloud encrypts with its service key
    with pytest.raises(InputError, match="expected a URL"):
        PulumiRunner(tmp_path, backend_url="/just/a/path", environ=env)
    monkeypatch.setenv("PROVISION_PULUMI_BACKEND", "s3://team-state")
    assert PulumiRunner(tmp_path).backend_url == "s3://team-state"


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], Path]:
    bindir = tmp_path / "root" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "pulumi").symlink_to(FAKE_CLI)
    log = tmp_path / "cli.log"
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    return {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path / "home")}, log


def test_automation_api_up_to_the_cli(tmp_path, fake_cli):
    environ, log = fake_cli
    runner = PulumiRunner(tmp_path / "state", environ=environ)
    events: list[str] = []
    with pytest.raises(PulumiFailed) as info:
        runner.preview(TARGET, events.append)
    message = str(info.value)
    assert "pulumi preview of provision-aws/demo failed" in message
    assert "fix: install the provider plugin: pulumi plugin install resource aws v7.51.1" \
        in message
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    argvs = [c["argv"] for c in calls]
    assert argvs[0] == ["version"]
    assert ["stack", "select", "--stack", "demo"] in argvs  # not there yet, so:
    assert ["stack", "init", "demo", "--secrets-provider", "passphrase"] in argvs
    assert ["plugin", "ls", "--json"] in argvs
    assert ["plugin", "install", "resource", "aws", "v7.51.1"] in argvs
    assert any(a[:2] == ["config", "set-all"] and "aws:region=us-east-1" in a for a in argvs)
    assert argvs[-1][0] == "preview"
    work = runner.work_dir(TARGET)
    stack_calls = [c for c in calls if c["argv"][0] != "version"]
    assert all(c["cwd"] == str(work) for c in stack_calls)
    assert all(c["env"]["PULUMI_BACKEND_URL"] == runner.backend_url for c in stack_calls)
    secret = (tmp_path / "state" / "pulumi" / "passphrase").read_text().strip()
    assert all(c["env"]["PULUMI_CONFIG_PASSPHRASE_FILE"] for c in stack_calls)
    assert secret not in log.read_text() and secret not in message
    project = yaml.safe_load((work / "Pulumi.yaml").read_text())
    assert project["name"] == "provision-aws" and project["runtime"] == "python"
    assert project["backend"]["url"] == runner.backend_url
    assert Path(runner.backend_url.removeprefix("file://")).is_dir()


def test_advice_for_known_failures():
    cases = {
        "NoCredentialProviders: no valid providers in chain": "aws configure",
        "google: could not find default credentials": "gcloud auth application-default login",
        "error: incorrect passphrase": "PULUMI_CONFIG_PASSPHRASE",
        "InsufficientInstanceCapacity: We currently do not have sufficient": "another zone",
        "ZONE_RESOURCE_POOL_EXHAUSTED": "another zone",
        "VcpuLimitExceeded: You have requested more vCPU capacity": "quota",
    }
    for text, expected in cases.items():
        assert expected in (advice_for(text) or ""), text
    assert advice_for("something nobody has seen") is None


class FakeStack:
    def __init__(self, fail: bool) -> None:
        self.fail, self.destroyed, self.removed = fail, False, False
        self.workspace = SimpleNamespace(remove_stack=lambda name: setattr(self, "removed", True))

    def destroy(self, on_event):
        from pulumi.automation.errors import CommandError

        self.destroyed = True
        if self.fail:
            raise CommandError(SimpleNamespace(stdout="", stderr="error: DependencyViolation: "
                                               "sg in use", code=255))


def _res(kind: str, name: str, custom: bool = True) -> dict:
    return {"urn": f"urn:pulumi:demo::provision-aws::{kind}::{name}", "type": kind,
            "custom": custom}


@pytest.mark.parametrize("fail", [False, True])
def test_destroy_reports_what_was_left(tmp_path, fail):
    before = [_res("pulumi:pulumi:Stack", "demo", False), _res("provision:aws:Cluster", "demo",
                                                                   False),
              _res("pulumi:providers:aws", "default"), _res("aws:ec2/vpc:Vpc", "demo-vpc"),
              _res("aws:ec2/instance:Instance", "demo-1")]
    after = [r for r in before if r["type"] != "aws:ec2/instance:Instance"] if fail else before[:1]
    stack = FakeStack(fail)
    answers = iter([before, after])

    class Runner(PulumiRunner):
        def stack(self, target):
            return stack

        def resources(self, target):
            return next(answers)

    events: list[str] = []
    outcome = Runner(tmp_path).destroy(StackProgram("provision-aws", "demo"), events.append)
    assert isinstance(outcome, DestroyOutcome) and stack.destroyed
    assert outcome.removed == (["aws:ec2/instance:Instance demo-1"] if fail else
                               ["aws:ec2/vpc:Vpc demo-vpc", "aws:ec2/instance:Instance demo-1"])
    assert outcome.leftovers == (["aws:ec2/vpc:Vpc demo-vpc"] if fail else [])
    assert stack.removed is (not fail)  # the empty stack is removed only after a clean destroy
    if fail:
        assert "DependencyViolation" in outcome.error and events


def test_engine_events_become_one_line_messages():
    events: list[str] = []
    sink = _event_sink(events.append)
    meta = SimpleNamespace(op="create", type="aws:ec2/instance:Instance",
                           urn="urn:pulumi:demo::provision-aws::aws:ec2/instance:Instance::demo-1")
    sink(SimpleNamespace(resource_pre_event=SimpleNamespace(metadata=meta),
                         res_op_failed_event=None, diagnostic_event=None))
    sink(SimpleNamespace(resource_pre_event=SimpleNamespace(metadata=SimpleNamespace(
        op="same", type="x", urn="u::n")), res_op_failed_event=None, diagnostic_event=None))
    sink(SimpleNamespace(resource_pre_event=None, res_op_failed_event=None,
                         diagnostic_event=SimpleNamespace(severity="warning",
                                                          message="quota is low\n")))
    assert events == ["create aws:ec2/instance:Instance demo-1", "warning: quota is low"]
