"""The gcp_gpudirect role in check mode (`--check --diff` on the controller: nothing is changed,
no container runs, no module is loaded): what it would install, start and configure for A3 High
(GPUDirect-TCPX) and A3 Mega (GPUDirect-TCPXO), read from Ansible's own diff and task results.
One run covers four inventory hosts, all the controller under another name.

The expected images, flags and NCCL variables are the ones the role's facts table
(roles/gcp_gpudirect/vars/main.yml) cites: slurm-gcp's receive-data-path-manager scripts used
by Cluster Toolkit's A3 blueprints, Google's GPUDirect-TCPX NCCL settings, and Cluster
Toolkit's TCPXO nccl-tests script.
"""

from __future__ import annotations

import sys

import pytest
import yaml

from tests.conftest import REPO

ROLES = REPO / "playbooks" / "roles"
A3_HIGH_NICS = ["enp6s0", "enp12s0", "enp134s0", "enp140s0"]  # Cluster Toolkit's delay-a3 unit
A3_MEGA_NICS = ["enp6s0", "enp7s0", "enp13s0", "enp14s0", "enp134s0", "enp135s0", "enp141s0",
                "enp142s0"]  # Cluster Toolkit / dstack TCPXO examples
HOSTS = {
    "a3high": {"provision_network_fabric": "gcp-tcpx", "gcp_gpudirect_data_nics": A3_HIGH_NICS},
    "a3mega": {"provision_network_fabric": "gcp-tcpxo", "gcp_gpudirect_data_nics": A3_MEGA_NICS},
    "a3mega-short": {"provision_network_fabric": "gcp-tcpxo",
                     "gcp_gpudirect_data_nics": A3_HIGH_NICS},
    "plain": {},
}


def mitogen() -> dict[str, str]:
    """Mitogen's strategy, as provision's converge uses it (one Python per host, not per task)."""
    from provision.converge import mitogen_strategy_dir

    strategy = mitogen_strategy_dir()
    return ({"ANSIBLE_STRATEGY_PLUGINS": strategy, "ANSIBLE_STRATEGY": "mitogen_linear"}
            if strategy else {})


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[tuple[str, str], dict]:
    """(host, task) → the task's final result, from one check-mode run."""
    import ansible_runner

    root = tmp_path_factory.mktemp("gpudirect")
    (root / "project").mkdir()
    (root / "project" / "play.yml").write_text(
        "- hosts: all\n  gather_facts: true\n  gather_subset: ['!all', network]\n"
        "  roles: [gcp_gpudirect]\n")
    common = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
              "gcp_gpudirect_ctrl_nic": "enp0s12",
              # this controller has no modprobe nor the import-helper module; the default list
              # is checked from the role's defaults below instead of being loaded here
              "gcp_gpudirect_tcpxo_kernel_modules": []}
    inventory = {"all": {"hosts": {h: {**common, **v} for h, v in HOSTS.items()}}}
    (root / "inventory.yml").write_text(yaml.safe_dump(inventory))
    found: dict[tuple[str, str], dict] = {}

    def handler(event: dict) -> bool:
        data = event.get("event_data") or {}
        if event.get("event") in ("runner_on_ok", "runner_on_failed", "runner_on_skipped"):
            found[(data.get("host", ""), data.get("task", ""))] = {
                "event": event["event"], **(data.get("res") or {})}
        return True

    ansible_runner.run(private_data_dir=str(root), playbook="play.yml",
                       inventory=str(root / "inventory.yml"), cmdline="--check --diff",
                       quiet=True, event_handler=handler,
                       envvars={"ANSIBLE_ROLES_PATH": str(ROLES), "ANSIBLE_NOCOLOR": "True",
                                **mitogen()})
    return found


def after(results: dict, host: str, task: str) -> str:
    res = results[(host, task)]
    assert res["event"] == "runner_on_ok", res
    return "".join(d.get("after", "") for d in res.get("diff", []))


ARGS = "GPUDirect | The RxDM's arguments"
CONF = "GPUDirect | NCCL settings every process reads"
PROFILE = "GPUDirect | Library path (and TCPXO's generated profile) for login shells"


def test_a3_high_gets_gpudirect_tcpx(results):
    args, conf = after(results, "a3high", ARGS), after(results, "a3high", CONF)
    assert "us-docker.pkg.dev/gce-ai-infra/gpudirect-tcpx/tcpgpudmarxd-dev:v2.0.12" in args
    assert "--gpu_shmem_type fd --uds_path /run/tcpx" in args and "--gpus all" in args
    assert f"NCCL_GPUDIRECTTCPX_SOCKET_IFNAME={','.join(A3_HIGH_NICS)}\n" in conf
    assert "NCCL_GPUDIRECTTCPX_CTRL_DEV=enp0s12\n" in conf
    assert "NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX=/run/tcpx\n" in conf
    assert ("NCCL_GPUDIRECTTCPX_TX_BINDINGS=enp6s0:8-21,112-125;enp12s0:8-21,112-125;"
            "enp134s0:60-73,164-177;enp140s0:60-73,164-177\n") in conf
    assert 'LD_LIBRARY_PATH="/var/lib/tcpx/lib64' in after(results, "a3high", PROFILE)
    install = results[("a3high", "GPUDirect | NCCL network plugin into /var/lib/tcpx/lib64")]
    assert install["event"] in ("runner_on_ok", "runner_on_skipped")  # would run (check mode)


def test_a3_mega_gets_gpudirect_tcpxo(results):
    args, conf = after(results, "a3mega", ARGS), after(results, "a3mega", CONF)
    assert "us-docker.pkg.dev/gce-ai-infra/gpudirect-tcpxo/tcpgpudmarxd-dev:v1.0.16" in args
    assert "--num_hops=2 --num_nics=8" in args
    assert "--volume /dev/dmabuf_import_helper:/dev/dmabuf_import_helper" in args
    assert f"NCCL_FASTRAK_IFNAME={','.join(A3_MEGA_NICS)}\n" in conf
    assert "NCCL_FASTRAK_CTRL_DEV=enp0s12\n" in conf and "NCCL_SOCKET_IFNAME=enp0s12\n" in conf
    assert "NCCL_FASTRAK_LLCM_DEVICE_DIRECTORY=/dev/aperture_devices\n" in conf
    assert '. "/var/lib/tcpxo/lib64/nccl-env-profile.sh"' in after(results, "a3mega", PROFILE)
    defaults = yaml.safe_load((ROLES / "gcp_gpudirect" / "defaults" / "main.yml").read_text())
    assert defaults["gcp_gpudirect_tcpxo_kernel_modules"] == ["import-helper"]


def test_a_missing_data_nic_fails_with_what_to_do(results):
    res = results[("a3mega-short", "GPUDirect | Every data NIC is there")]
    assert res["event"] == "runner_on_failed"
    assert "gcp-tcpxo needs 8 data NICs, found 4" in res["msg"]


def test_nothing_happens_without_gpudirect_nics(results):
    tasks = {t: r["event"] for (h, t), r in results.items() if h == "plain"}
    assert tasks.pop("GPUDirect | Check the settings") == "runner_on_ok"
    assert tasks.pop("Gathering Facts") == "runner_on_ok"
    assert set(tasks.values()) == {"runner_on_skipped"}
