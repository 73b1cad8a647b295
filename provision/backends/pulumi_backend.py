"""The part every Pulumi-driven backend shares: spec → program → runner → NodeRecords.

A subclass says which project and plugins it uses, what it can do (``capabilities``), and how a
ClusterSpec becomes its stack component (``component``) and provider config (``config``).
Everything else — running the stack, reading node records back, destroying and reporting what
was left — is here, once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from provision.backends.base import ClusterSpec, DestroyReport, Event, NodeRecord
from provision.backends.operator import Detector, detect_public_ip
from provision.backends.pulumi_runner import Plugin, PulumiRunner, StackProgram
from provision.errors import InputError, ProvisionError

Builder = Callable[[], Any]  # creates the stack's ComponentResource when called


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
        self.runner = runner or PulumiRunner(self.state_dir, backend_url=backend_url)
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

    # -- Backend protocol ----------------------------------------------------------------------
    def apply(self, spec: ClusterSpec, event: Event) -> list[NodeRecord]:
        self.check(spec)
        self.runner.cli()  # fail with the install hint before any other work (or network)
        event(f"{self.name}: pulumi up {self.project}/{spec.cluster} "
              f"({len(spec.nodes)} node(s))")
        return self.records(self.runner.up(self.stack_program(spec), event))

    def nodes(self, cluster: str) -> list[NodeRecord]:
        return self.records(self.runner.outputs(self.target(cluster)))

    def destroy(self, cluster: str, event: Event) -> DestroyReport:
        event(f"{self.name}: pulumi destroy {self.project}/{cluster}")
        outcome = self.runner.destroy(self.target(cluster), event)
        return DestroyReport(removed=outcome.removed, leftovers=outcome.leftovers)

    def preview(self, spec: ClusterSpec, event: Event) -> dict[str, int]:
        """A real `pulumi preview` (needs the CLI, plugins and credentials)."""
        self.check(spec)
        self.runner.cli()
        return self.runner.preview(self.stack_program(spec), event)
