"""SIMULATED NVIDIA Container Toolkit CLIs (provision-sim): ``nvidia-ctk`` and
``nvidia-container-cli``.

``nvidia-ctk runtime configure --runtime=docker|containerd|crio`` edits the runtime's config
file the way the real one does (docker: the ``runtimes.nvidia`` entry of daemon.json;
containerd/CRI-O: an ``nvidia`` runtime section), so the container_toolkit role's configure
and restart-handler logic runs unchanged. ``nvidia-ctk cdi generate`` writes a CDI spec
(JSON, which is valid YAML) for the device ``nvidia.com/gpu=all`` that binds the simulated
driver's userspace (simmounts.py) into a container: podman's CDI support then makes the GPUs
visible inside, through the same mechanism as on a real node. ``nvidia-container-cli info``
prints the real format for the node's GPUs. Without the stand-in driver both fail as the real
ones do (NVML not found). Stdlib only (python3 -S).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

TAG = "SIMULATED by provision-sim"
VERSION = "1.17.3"
CDI_VERSION = "0.5.0"
DOCKER_CONFIG = "/etc/docker/daemon.json"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
CRIO_CONFIG = "/etc/crio/crio.conf.d/99-nvidia.toml"


def _info(msg: str) -> None:
    print(f'time="0000-00-00T00:00:00Z" level=info msg="{msg}"', file=sys.stderr)


def _error(msg: str) -> int:
    print(f'time="0000-00-00T00:00:00Z" level=error msg="{msg}"', file=sys.stderr)
    return 1


def _simgpu() -> Any:
    lib = os.environ.get("PROVISION_SIM_LIB") or "/usr/lib/provision-sim"
    if not (Path(lib) / "simgpu.py").is_file():
        return None
    sys.path.insert(0, lib)
    import simgpu

    return simgpu


def _node() -> tuple[Any, str | None]:
    """(simgpu Node, None) or (None, the real tools' NVML error)."""
    sim = _simgpu()
    if sim is None:
        return None, "failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND"
    try:
        node = sim.load_node()
    except sim.SimError as exc:
        return None, f"{TAG}: {exc}"
    problem = node.driver_problem()
    if problem is not None:
        return None, f"failed to initialize NVML: {problem[1].splitlines()[0]}"
    return node, None


def _opt(argv: list[str], name: str, default: str | None = None) -> str | None:
    for k, a in enumerate(argv):
        if a.startswith(f"{name}="):
            return a.split("=", 1)[1]
        if a == name and k + 1 < len(argv):
            return argv[k + 1]
    return default


def _configure_docker(path: Path, default: bool) -> None:
    config = json.loads(path.read_text(encoding="utf-8") or "{}") if path.exists() else {}
    config.setdefault("runtimes", {})["nvidia"] = {"args": [],
                                                  "path": "nvidia-container-runtime"}
    if default:
        config["default-runtime"] = "nvidia"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=4) + "\n", encoding="utf-8")


TOML_SECTIONS = {
    "containerd": ('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n'
                   '  runtime_type = "io.containerd.runc.v2"\n'
                   '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]\n'
                   '    BinaryName = "/usr/bin/nvidia-container-runtime"\n'),
    "crio": ('[crio.runtime.runtimes.nvidia]\n'
             'runtime_path = "/usr/bin/nvidia-container-runtime"\n'
             'runtime_type = "oci"\n'),
}


def _configure_toml(path: Path, runtime: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    section = TOML_SECTIONS[runtime]
    if section.splitlines()[0] not in text:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def runtime_configure(argv: list[str]) -> int:
    runtime = _opt(argv, "--runtime", "docker")
    default = "--set-as-default" in argv
    paths = {"docker": DOCKER_CONFIG, "containerd": CONTAINERD_CONFIG, "crio": CRIO_CONFIG}
    if runtime not in paths:
        return _error(f"unrecognized runtime '{runtime}'")
    path = Path(_opt(argv, "--config", paths[runtime]) or paths[runtime])
    _info(f"Loading config from {path}")
    if runtime == "docker":
        _configure_docker(path, default)
    else:
        _configure_toml(path, runtime)
    _info(f"Wrote updated config to {path}")
    _info(f"It is recommended that {runtime} daemon be restarted.")
    return 0


def cdi_spec() -> dict[str, Any]:
    """The CDI spec for the simulated GPUs: one device, all, binding the driver userspace."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import simmounts

    mounts = [{"hostPath": h, "containerPath": c, "options": ["ro", "nosuid", "nodev", "bind"]}
              for h, c in simmounts.userspace_mounts()]
    # CDI 0.5.0 has no annotations: the SIMULATED label travels as an environment variable
    return {"cdiVersion": CDI_VERSION, "kind": "nvidia.com/gpu",
            "devices": [{"name": "all", "containerEdits": {
                "env": ["NVIDIA_VISIBLE_DEVICES=void"]}}],
            "containerEdits": {"env": [f"PROVISION_SIM_CDI={TAG}"], "mounts": mounts}}


def cdi(argv: list[str]) -> int:
    sub = argv[0] if argv else ""
    if sub == "generate":
        node, err = _node()
        if node is None:
            return _error(f"failed to generate CDI spec: {err}")
        spec = cdi_spec()
        text = json.dumps(spec, indent=2) + "\n"
        out = _opt(argv, "--output")
        if out:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(text, encoding="utf-8")
            _info(f"Generated CDI spec with version {CDI_VERSION}")
        else:
            sys.stdout.write(text)
        return 0
    if sub == "list":
        found = []
        for d in ("/etc/cdi", "/var/run/cdi"):
            for f in sorted(Path(d).glob("*.*")) if Path(d).is_dir() else []:
                try:
                    spec = json.loads(f.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                found += [f"{spec.get('kind')}={dev['name']}" for dev in spec.get("devices", [])]
        _info(f"Found {len(found)} CDI devices")
        for name in found:
            print(name)
        return 0
    return _error(f"unknown cdi command {sub!r} ({TAG} supports generate and list)")


def ctk(argv: list[str]) -> int:
    """nvidia-ctk: --version, runtime configure, cdi generate|list."""
    if not argv or argv[0] in ("-v", "--version", "version"):
        print(f"NVIDIA Container Toolkit CLI version {VERSION}\ncommit: {TAG}")
        return 0
    if argv[:2] == ["runtime", "configure"]:
        return runtime_configure(argv[2:])
    if argv[0] == "cdi":
        return cdi(argv[1:])
    return _error(f"{TAG}: unsupported command {' '.join(argv)!r}")


def container_cli(argv: list[str]) -> int:
    """nvidia-container-cli: --version and info."""
    if argv[:1] in (["--version"], ["-V"]):
        print(f"cli-version: {VERSION}\nlib-version: {VERSION}\nbuild date: {TAG}")
        return 0
    if "info" not in argv:
        print(f"nvidia-container-cli: {TAG} supports --version and info", file=sys.stderr)
        return 2
    node, err = _node()
    if node is None:
        print(f"nvidia-container-cli: initialization error: nvml error: {err}",
              file=sys.stderr)
        return 1
    print(f"{TAG}: no NVIDIA hardware is present", file=sys.stderr)
    print(f"NVRM version:   {node.driver}\nCUDA version:   {node.cuda}\n")
    for i in range(node.gpu_count):
        print(f"Device Index:   {i}\nDevice Minor:   {i}\nModel:          {node.gpu_name()}\n"
              f"Brand:          Nvidia\nGPU UUID:       {node.uuid(i)}\n"
              f"Bus Location:   {node.bus_id(i)}\n"
              f"Architecture:   {sys.modules['simgpu'].CAPABILITY.get(node.sku, '8.0')}\n")
    return 0


def main(tool: str, argv: list[str]) -> int:
    return {"nvidia-ctk": ctk, "nvidia-container-cli": container_cli}[tool](argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
