"""The part every Pulumi-driven backend shares: spec → program → runner → NodeRecords.

A subclass says which project and plugins it uses, what it can do (``capabilities``), and how a
ClusterSpec becomes its stack component (``component``) and provider config (``config``).
Everything else — running the stack, reading node records back, destroying and reporting what
was left — is here, once.

Liveness: a stack's outputs are what the program exported when it last ran, so a spot instance
terminated since then, a GCP VM reclaimed with termination action DELETE or a preempted TPU
still appear in them. :meth:`PulumiBackend.refresh` runs `pulumi refresh` (each provider reads
its resources back; one that no longer exists leaves the state), and :meth:`PulumiBackend.nodes`
keeps only the records whose instance resource is still in the stack in a running state
(:data:`LIVENESS`).

Runner: ``$PROVISION_PULUMI_RUNNER`` (``module:Class``) replaces the Automation API runner with
another implementation of the same methods; the test suite uses it to run `provision up` end
to end against a simulated cloud (tests/fixtures/cloud/sim_engine.py).
"""

from __future__ import annotations

import importlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from provision.backends.base import ClusterSpec, DestroyReport, Event, NodeRecord
from provision.backends.operator import Detector, detect_public_ip
from provision.backends.pulumi_runner import Plugin, PulumiRunner, StackProgram
from provision.errors import InputError, ProvisionError
from provision.state import write_private

Builder = Callable[[], Any]  # creates the stack's ComponentResource when called
RUNNER_ENV = "PROVISION_PULUMI_RUNNER"


def _matches_instance(r: NodeRecord, out: dict[str, Any]) -> bool:
    return out.get("id") == r.instance_id


def _matches_vm(r: NodeRecord, out: dict[str, Any]) -> bool:
    return out.get("name") == r.name


def _matches_tpu(r: NodeRecord, out: dict[str, Any]) -> bool:
    return out.get("name") == r.labels.get("tpu")


def _matches_queued_tpu(r: NodeRecord, out: dict[str, Any]) -> bool:
    return out.get("kind") == "tpu-queued-resource" and _matches_tpu(r, out)


# resource type → (does it hold this record?, its state output, states that count as alive).
# Transitional states count as alive: recovery replaces nodes that are gone, not ones starting.
LIVENESS: dict[str, tuple[Callable[[NodeRecord, dict[str, Any]], bool], str, frozenset[str]]] = {
    # EC2 instance states (DescribeInstances): stopped/stopping spot nodes are lost for now
    "aws:ec2/instance:Instance": (_matches_instance, "instanceState",
                                  frozenset({"pending", "running"})),
    # Compute Engine instance status: TERMINATED is a stopped (or STOP-reclaimed spot) VM
    "gcp:compute/instance:Instance": (_matches_vm, "currentStatus",
                                      frozenset({"PROVISIONING", "STAGING", "RUNNING",
                                                 "REPAIRING"})),
    # TPU node states (tpu.googleapis.com v2 Node.State); see tpu_recovery.STATE_ACTIONS
    "gcp:tpu/v2Vm:V2Vm": (_matches_tpu, "state",
                          frozenset({"READY", "CREATING", "STARTING", "RESTARTING",
                                     "REIMAGING", "REPAIRING"})),
    # a slice obtained through a queued resource (stacks/tpu_queued.py): its node's state
    "pulumi-python:dynamic:Resource": (_matches_queued_tpu, "state",
                                       frozenset({"READY", "CREATING", "STARTING",
                                                  "RESTARTING", "REIMAGING", "REPAIRING"})),
}


def alive(record: NodeRecord, resources: list[dict[str, Any]]) -> bool:
    """Whether ``record``'s instance is still in the (refreshed) stack and running. Records
    of providers the table does not cover (bare-metal hosts) are taken as alive."""
    if not any(kind.startswith(f"{record.provider}:") for kind in LIVENESS):
        return True
    for r in resources:
        rule = LIVENESS.get(r.get("type", ""))
        out = r.get("outputs") or {}
        if rule is not None and rule[0](record, out):
            state = out.get(rule[1])
            return state is None or str(state) in rule[2]
    return False


def make_runner(state_dir: Path, backend_url: str | None) -> Any:
    """The Automation API runner, or the one ``$PROVISION_PULUMI_RUNNER`` names."""
    target = os.environ.get(RUNNER_ENV)
    if not target:
        return PulumiRunner(state_dir, backend_url=backend_url)
    module, _, cls = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"{RUNNER_ENV}={target!r}: {exc}") from None
    return factory(state_dir, backend_url=backend_url)


class PulumiBackend(ABC):
    """Base class; see the module docstring."""

    name = ""
    project = ""
    # provider plugin name → its Python SDK package (whose version the plugin must match)
    plugin_packages: ClassVar[dict[str, str]] = {}
    capabilities: ClassVar[dict[str, bool]] = {}
    # what each capability means when a plan asks for it but the backend lacks it
    capability_errors: ClassVar[dict[str, str]] = {}

    def __init__(self, state_dir: Path, *, runner: PulumiRunner | None = None,
                 backend_url: str | None = None,
                 detect_cidr: Detector | None = detect_public_ip) -> None:
        self.state_dir = Path(state_dir)
        self.runner = runner or make_runner(self.state_dir, backend_url)
        self.detect_cidr = detect_cidr

    # -- what subclasses provide ----------------------------------------------------------------
    @abstractmethod
    def component(self, spec: ClusterSpec, *, offline: bool = False) -> Builder:
        """A function creating the stack's component for ``spec``. ``offline``: no network
        calls while building it (operator IP detection is replaced by a placeholder)."""

    def config(self, spec: ClusterSpec) -> dict[str, str]:
        """Provider configuration for the stack (region, project, ...)."""
        return {}

    # -- shared ------------------------------------------------------------------------------------
    def plugins(self) -> tuple[Plugin, ...]:
        """Provider plugins at the versions of the installed SDK packages (they must agree)."""
        out = []
        for plugin, package in self.plugin_packages.items():
            try:
                out.append(Plugin(plugin, metadata.version(package)))
            except metadata.PackageNotFoundError:
                raise ProvisionError(f"the {package} package is missing: pip install "
                                     "'provision[cloud]'") from None
        return tuple(out)

    def check(self, spec: ClusterSpec) -> None:
        """Refuse, before any cloud call, what this backend cannot do."""
        wants = {"spot": spec.spot, "multi_node": len(spec.nodes) > 1}
        for feature, wanted in wants.items():
            if wanted and not self.capabilities.get(feature, False):
                raise InputError(self.capability_errors.get(
                    feature, f"the {self.name} backend does not support {feature}"))

    def stack_program(self, spec: ClusterSpec) -> StackProgram:
        build = self.component(spec)

        def program() -> None:
            import pulumi

            component = build()
            pulumi.export("nodes", component.nodes)
            for key, value in getattr(component, "exports", {}).items():
                pulumi.export(key, value)

        return StackProgram(self.project, spec.cluster, program, self.config(spec),
                            self.plugins())

    def target(self, cluster: str) -> StackProgram:
        """The stack of ``cluster`` without a program (outputs, refresh, destroy)."""
        return StackProgram(self.project, cluster, None, {}, self.plugins())

    @staticmethod
    def records(outputs: dict[str, Any]) -> list[NodeRecord]:
        return [NodeRecord.from_json(n) for n in outputs.get("nodes") or []]

    # -- what the backend keeps about a cluster besides the stack (region, pinned image) ------
    @property
    def notes_file(self) -> Path:
        return self.state_dir / f"{self.name}.json"

    def notes(self) -> dict[str, Any]:
        try:
            return json.loads(self.notes_file.read_text())
        except (OSError, ValueError):
            return {}

    def save_notes(self, notes: dict[str, Any]) -> None:
        write_private(self.notes_file, json.dumps(notes, indent=2, sort_keys=True) + "\n")

    # -- Backend protocol ----------------------------------------------------------------------
    def apply(self, spec: ClusterSpec, event: Event) -> list[NodeRecord]:
        self.check(spec)
        self.runner.cli()  # fail with the install hint before any other work (or network)
        program = self.stack_program(spec)
        if self.runner.resources(program):
            # what died since the last run leaves the state, so this `up` creates it again
            event(f"{self.name}: pulumi refresh {self.project}/{spec.cluster}")
            self.runner.refresh(program, event)
        event(f"{self.name}: pulumi up {self.project}/{spec.cluster} "
              f"({len(spec.nodes)} node(s))")
        return self.records(self.runner.up(program, event))

    def refresh(self, cluster: str, event: Event) -> None:
        """`pulumi refresh`: providers read every resource back (see the module docstring)."""
        target = self.target(cluster)
        if self.runner.resources(target):
            event(f"{self.name}: pulumi refresh {self.project}/{cluster}")
            self.runner.refresh(target, event)

    def nodes(self, cluster: str) -> list[NodeRecord]:
        """The exported node records whose instances are alive in the stack as last read."""
        target = self.target(cluster)
        records = self.records(self.runner.outputs(target))
        if not records:
            return []
        resources = self.runner.resources(target)
        return [r for r in records if alive(r, resources)]

    def destroy(self, cluster: str, event: Event) -> DestroyReport:
        event(f"{self.name}: pulumi destroy {self.project}/{cluster}")
        outcome = self.runner.destroy(self.target(cluster), event)
        return DestroyReport(removed=outcome.removed, leftovers=outcome.leftovers)

    def preview(self, spec: ClusterSpec, event: Event) -> dict[str, int]:
        """A real `pulumi preview` (needs the CLI, plugins and credentials)."""
        self.check(spec)
        self.runner.cli()
        return self.runner.preview(self.stack_program(spec), event)
