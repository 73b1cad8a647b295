"""The monitoring role's Prometheus files, rendered by Ansible from the role's own templates and
variables, checked by Prometheus' promtool: the scrape configuration (`promtool check config`)
and the alert rules (`promtool check rules`, then `promtool test rules` on recorded series in
tests/fixtures/monitoring/). No Prometheus server runs: promtool comes out of Debian's
`prometheus` package, unpacked (never installed) into a cache directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

ROLE = REPO / "playbooks" / "roles" / "monitoring"
FIXTURES = REPO / "tests" / "fixtures" / "monitoring"


def _cache_dir() -> Path:
    # not XDG_CACHE_HOME: the suite points that at a fresh directory every session
    return Path(os.environ.get("PROVISION_TEST_CACHE") or Path.home() / ".cache" /
                "provision-tests")


@pytest.fixture(scope="session")
def promtool(tmp_path_factory: pytest.TempPathFactory) -> str:
    """promtool from PATH, else from Debian's prometheus package (downloaded once, unpacked
    with dpkg-deb -x, cached): nothing is installed and no server starts."""
    found = shutil.which("promtool")
    if found:
        return found
    cached = _cache_dir() / "promtool"
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.fail("promtool is needed: install Debian's prometheus package's promtool, or "
                    "put promtool on PATH")
    work = tmp_path_factory.mktemp("promtool")
    download = ["apt-get", "download", "prometheus"]
    proc = subprocess.run(download, cwd=work, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:  # an empty or stale package list: refresh it once
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300)
        proc = subprocess.run(download, cwd=work, capture_output=True, text=True, timeout=300)
    debs = sorted(work.glob("prometheus_*.deb"))
    if proc.returncode != 0 or not debs:
        pytest.fail(f"could not download Debian's prometheus package for promtool:\n"
                    f"{proc.stderr[-1500:]}")
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(work / "x")], check=True, timeout=120)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".promtool.{os.getpid()}")
    shutil.copy2(work / "x" / "usr" / "bin" / "promtool", tmp)
    tmp.replace(cached)
    return str(cached)


INVENTORY = """
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: {python}
    provision_cluster: alerts-test
    provision_head: head-1
    provision_nodes:
      - {{name: head-1, address: 10.88.0.2, sku: cpu}}
      - {{name: gpu-1, address: 10.88.0.3, sku: h100-sxm-80gb}}
      - {{name: gpu-2, address: 10.88.0.4, sku: h100-sxm-80gb}}
  hosts:
    head-1: {{}}
    gpu-1: {{}}
    gpu-2: {{}}
  children:
    gpu_nodes:
      hosts:
        gpu-1: {{}}
        gpu-2: {{}}
"""

RENDER = """
- name: Render the monitoring role's Prometheus files
  hosts: head-1
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  tasks:
    - name: Render | alert rules
      ansible.builtin.template:
        src: {role}/templates/provision-alerts.yml.j2
        dest: "{{{{ out }}}}/rules/provision-alerts.yml"
        mode: "0644"
    - name: Render | scrape configuration
      ansible.builtin.template:
        src: {role}/templates/prometheus.yml.j2
        dest: "{{{{ out }}}}/prometheus.yml"
        mode: "0644"
"""


def render(out: Path, **overrides: object) -> Path:
    """Render rules and scrape config into ``out`` through ansible-playbook, as the role would
    on the head node of a three-node cluster (one CPU head, two GPU workers)."""
    (out / "rules").mkdir(parents=True, exist_ok=True)
    (out / "hosts.yml").write_text(INVENTORY.format(python=sys.executable))
    (out / "render.yml").write_text(RENDER.format(role=ROLE))
    extra = {"out": str(out), "_monitoring_rules_file": str(out / "rules" /
                                                            "provision-alerts.yml"),
             **overrides}
    (out / "extra.yml").write_text(yaml.safe_dump(extra))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_DEPRECATION_WARNINGS": "False",
           "ANSIBLE_LOCALHOST_WARNING": "False"}
    proc = subprocess.run(["ansible-playbook", "-i", str(out / "hosts.yml"),
                           "-e", f"@{out / 'extra.yml'}", str(out / "render.yml")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("monitoring-default"))


def promtool_run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_scrape_config_passes_promtool_and_scrapes_every_node(promtool, rendered):
    proc = promtool_run(promtool, "check", "config", "prometheus.yml", cwd=rendered)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr

    config = yaml.safe_load((rendered / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"prometheus", "node", "dcgm"}

    def targets(job: str) -> dict[str, str]:
        return {sc["labels"]["instance"]: sc["targets"][0] for sc in jobs[job]["static_configs"]}

    # by name (resolved through the /etc/hosts the base role keeps current)
    assert targets("node") == {"head-1": "head-1:9100", "gpu-1": "gpu-1:9100",
                               "gpu-2": "gpu-2:9100"}
    assert targets("dcgm") == {"gpu-1": "gpu-1:9400", "gpu-2": "gpu-2:9400"}
    assert config["global"]["external_labels"] == {"cluster": "alerts-test"}
    assert config["rule_files"] == [str(rendered / "rules" / "provision-alerts.yml")]


def test_rules_pass_promtool_check(promtool, rendered):
    proc = promtool_run(promtool, "check", "rules", "rules/provision-alerts.yml", cwd=rendered)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    groups = yaml.safe_load((rendered / "rules" / "provision-alerts.yml").read_text())["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"]}
    assert alerts == {"NodeDown", "GpuExporterDown", "GpuMissing", "GpuCountDropped",
                      "GpuXidFatal", "GpuXidError", "GpuEccUncorrectable", "GpuRowRemapFailure",
                      "GpuRowsRemapped", "GpuNvlinkRecoveryErrors", "GpuNvlinkErrors",
                      "GpuTemperatureHigh", "GpuMemoryNearlyFull", "GpuNodeIdle"}


def test_alert_rules_on_recorded_series(promtool, rendered):
    """Every rule fires on the series that should trip it, not before its `for`, and not on
    healthy neighbours (tests/fixtures/monitoring/alerts_test.yml)."""
    shutil.copy(FIXTURES / "alerts_test.yml", rendered / "alerts_test.yml")
    proc = promtool_run(promtool, "test", "rules", "alerts_test.yml", cwd=rendered)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_thresholds_come_from_the_variables(promtool, tmp_path):
    """The idle alert follows plan.yaml's lifecycle figures (as group_vars), the temperature
    alert its own variables; targets can be addresses instead of names."""
    out = render(tmp_path, monitoring_idle_minutes=30, monitoring_idle_gpu_util_percent=10,
                 monitoring_gpu_temp_celsius=80, monitoring_gpu_temp_for="1m",
                 monitoring_target_address="address")
    assert promtool_run(promtool, "check", "config", "prometheus.yml", cwd=out).returncode == 0
    config = yaml.safe_load((out / "prometheus.yml").read_text())
    node = next(j for j in config["scrape_configs"] if j["job_name"] == "node")
    assert [sc["targets"] for sc in node["static_configs"]] == [
        ["10.88.0.2:9100"], ["10.88.0.3:9100"], ["10.88.0.4:9100"]]
    (out / "thresholds_test.yml").write_text(textwrap.dedent("""
        rule_files: [rules/provision-alerts.yml]
        evaluation_interval: 1m
        tests:
          - interval: 1m
            input_series:
              - series: 'DCGM_FI_DEV_GPU_UTIL{job="dcgm",instance="gpu-1",gpu="0"}'
                values: '8x40'
              - series: 'DCGM_FI_DEV_GPU_UTIL{job="dcgm",instance="gpu-2",gpu="0"}'
                values: '12x40'
              - series: 'DCGM_FI_DEV_GPU_TEMP{job="dcgm",instance="gpu-1",gpu="0"}'
                values: '81x5'
            alert_rule_test:
              - {eval_time: 29m, alertname: GpuNodeIdle, exp_alerts: []}
              - eval_time: 31m
                alertname: GpuNodeIdle
                exp_alerts:
                  - exp_labels: {severity: info, instance: gpu-1}
                    exp_annotations:
                      summary: "gpu-1: GPUs idle"
                      description: >-
                        Every GPU of gpu-1 has stayed below 10 % utilisation for 30 minutes:
                        idle GPUs still cost money.
              - eval_time: 2m
                alertname: GpuTemperatureHigh
                exp_alerts:
                  - exp_labels: {severity: warning, instance: gpu-1, gpu: "0", job: dcgm}
                    exp_annotations:
                      summary: "gpu-1 GPU 0: 81 °C"
                      description: >-
                        gpu-1 GPU 0 has been above 80 °C for 1m: it will throttle; check
                        cooling.
    """))
    proc = promtool_run(promtool, "test", "rules", "thresholds_test.yml", cwd=out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
