"""Run stack programs through Pulumi's Automation API (the `pulumi` CLI does the work).

State
    By default the stacks live in a local file backend inside the cluster's state directory:

        <state_dir>/pulumi/backend/      Pulumi's file:// backend (checkpoints, history)
        <state_dir>/pulumi/work/<project>-<stack>/   one workspace per stack (Pulumi.yaml ...)
        <state_dir>/pulumi/passphrase    generated secrets passphrase (0600), file backend only

    A remote backend is chosen by URL (``backend_url=`` or ``$PROVISION_PULUMI_BACKEND``):
    ``s3://bucket/prefix``, ``gs://bucket/prefix``, ``azblob://container``, or
    ``https://api.pulumi.com`` (Pulumi Cloud, after ``pulumi login``).

Secrets
    Config secrets are encrypted with a passphrase: ``$PULUMI_CONFIG_PASSPHRASE`` or
    ``$PULUMI_CONFIG_PASSPHRASE_FILE`` when set; otherwise, for the local file backend only, a
    random passphrase generated once into the state directory (mode 0600) and handed to the CLI
    as a file path, never as an argument or in a message. Bucket backends need the variable,
    because a passphrase kept on one machine would lock everyone else out of the shared state.
    Pulumi Cloud encrypts with its own service key.

Pulumi is imported when a method runs, never at module import: `provision plan` stays fast.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.backends.base import Event
from provision.errors import InputError, LockHeld, ProvisionError
from provision.state import write_private

BACKEND_ENV = "PROVISION_PULUMI_BACKEND"
PASSPHRASE_ENV = "PULUMI_CONFIG_PASSPHRASE"
PASSPHRASE_FILE_ENV = "PULUMI_CONFIG_PASSPHRASE_FILE"
REMOTE_SCHEMES = ("file://", "s3://", "gs://", "azblob://", "https://", "http://")
INSTALL_CLI = ("install the Pulumi CLI: curl -fsSL https://get.pulumi.com | sh  (it installs "
               "into ~/.pulumi/bin; provision looks there and on PATH)")


class PulumiUnavailable(ProvisionError):
    """The Pulumi CLI is missing or too old: the message says what to install."""

    exit_code = 1


class PulumiFailed(ProvisionError):
    """A Pulumi operation failed; the message has the CLI's error and what to do about it."""

    exit_code = 1


# Known failure texts → what the operator should do. First match wins.
ADVICE: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.I), a) for p, a in (
    (r"no resource plugin '?pulumi-resource-(?P<name>[a-z0-9-]+)'?"
     r"(?:[^\n]*?version\s+(?P<version>v?[0-9][0-9.]*[0-9]))?",
     "install the provider plugin: pulumi plugin install resource {name} {version}"),
    (r"(could not|failed to) (find|download|install) (the )?plugin",
     "install the provider plugins: pulumi plugin install resource aws v7.51.1 (or gcp "
     "v10.2.0); without internet access copy ~/.pulumi/plugins from a machine that has them"),
    (r"NoCredentialProviders|no valid credential sources|unable to locate credentials|"
     r"InvalidClientTokenId|ExpiredToken",
     "AWS credentials are missing or expired: run `aws configure` or `aws sso login`, or set "
     "AWS_PROFILE / AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    (r"could not find default credentials|google: could not find|"
     r"Application Default Credentials|invalid_grant",
     "GCP credentials are missing: run `gcloud auth application-default login`, or set "
     "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"),
    (r"incorrect passphrase|passphrase must be set|PULUMI_CONFIG_PASSPHRASE",
     "the secrets passphrase is missing or wrong: set PULUMI_CONFIG_PASSPHRASE (or "
     "PULUMI_CONFIG_PASSPHRASE_FILE) to the one this stack was created with"),
    (r"PULUMI_ACCESS_TOKEN|not logged in|pulumi login",
     "log in to the state backend: pulumi login (or set PULUMI_ACCESS_TOKEN for Pulumi Cloud)"),
    (r"Minimum version requirement failed|minimum version",
     "the Pulumi CLI is too old for this SDK: upgrade with curl -fsSL https://get.pulumi.com "
     "| sh"),
    (r"InsufficientInstanceCapacity|ZONE_RESOURCE_POOL_EXHAUSTED|stockout|"
     r"resource pool exhausted",
     "the zone has no capacity for this type right now: retry later, choose another zone "
     "(constraints.regions) or allow spot"),
    (r"VcpuLimitExceeded|QUOTA_EXCEEDED|Quota .* exceeded|MaxSpotInstanceCountExceeded",
     "an account quota is too low for this cluster: request an increase (AWS Service Quotas "
     "/ GCP IAM & Admin > Quotas)"),
))


def advice_for(text: str) -> str | None:
    """The advice line for a Pulumi error text, if it is a known failure."""
    for pattern, advice in ADVICE:
        m = pattern.search(text)
        if m:
            groups = {k: v or "" for k, v in m.groupdict().items()}
            if "version" in groups and not groups["version"]:
                groups["version"] = "(the version the stack asks for)"
            return advice.format(**groups) if groups else advice
    return None


@dataclass(frozen=True)
class Plugin:
    name: str  # aws, gcp
    version: str  # v7.51.1: the installed SDK package's version, so plugin and SDK agree


@dataclass(frozen=True)
class StackProgram:
    """One Pulumi stack: which project, which stack, what program, which config."""

    project: str  # provision-aws | provision-gcp | provision-baremetal
    stack: str  # the cluster name
    program: Callable[[], None] | None = None  # needed by preview/up; not by destroy
    config: Mapping[str, str] = field(default_factory=dict)  # e.g. {"aws:region": ...}
    plugins: tuple[Plugin, ...] = ()


@dataclass
class DestroyOutcome:
    removed: list[str] = field(default_factory=list)  # "type name" of each removed resource
    leftovers: list[str] = field(default_factory=list)  # still in state after destroy
    error: str | None = None


def default_backend_url(state_dir: Path) -> str:
    env = os.environ.get(BACKEND_ENV)
    return env if env else (state_dir / "pulumi" / "backend").resolve().as_uri()


def resource_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


class PulumiRunner:
    """preview / up / refresh / destroy of stacks, with events streamed to a callback."""

    def __init__(self, state_dir: Path, *, backend_url: str | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.backend_url = backend_url or default_backend_url(self.state_dir)
        if not self.backend_url.startswith(REMOTE_SCHEMES):
            raise InputError(f"Pulumi backend {self.backend_url!r}: expected a URL starting "
                             f"with one of {', '.join(REMOTE_SCHEMES)}")
        self.environ = dict(os.environ if environ is None else environ)

    # -- environment ---------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.state_dir / "pulumi"

    def work_dir(self, target: StackProgram) -> Path:
        """One workspace directory per stack: concurrent stacks never share workspace files."""
        return self.root / "work" / f"{target.project}-{target.stack}"

    def cli(self) -> str:
        """Path of the pulumi binary (PATH, then the installer's ~/.pulumi/bin)."""
        found = shutil.which("pulumi", path=self.environ.get("PATH"))
        if found:
            return found
        home = Path(self.environ.get("HOME") or Path.home())
        default = home / ".pulumi" / "bin" / "pulumi"
        if default.is_file() and os.access(default, os.X_OK):
            return str(default)
        raise PulumiUnavailable(
            "the Pulumi CLI is not installed (cloud and bare-metal targets run through it).\n"
            f"  {INSTALL_CLI}\n"
            "  then the provider plugins: pulumi plugin install resource aws v7.51.1; "
            "pulumi plugin install resource gcp v10.2.0\n"
            "  state stays local (file backend in the cluster's state directory) unless "
            f"{BACKEND_ENV} names s3://, gs:// or https://api.pulumi.com\n"
            "  without any of this, `provision preview PLAN --offline` shows what would be "
            "created")

    def _secrets_env(self) -> tuple[dict[str, str], str | None]:
        """(extra environment, secrets provider) for this backend; see the module docstring."""
        if self.backend_url.startswith(("https://", "http://")):
            return {}, None  # Pulumi Cloud: its own per-stack encryption
        if self.environ.get(PASSPHRASE_ENV) or self.environ.get(PASSPHRASE_FILE_ENV):
            return {}, "passphrase"
        if not self.backend_url.startswith("file://"):
            raise InputError(f"the {self.backend_url.split(':')[0]} state backend needs "
                             f"{PASSPHRASE_ENV} (or {PASSPHRASE_FILE_ENV}) set to a passphrase "
                             "your team shares, kept outside the bucket")
        path = self.root / "passphrase"
        if not path.exists():
            write_private(path, secrets.token_urlsafe(32) + "\n")
        return {PASSPHRASE_FILE_ENV: str(path)}, "passphrase"

    def workspace_env(self) -> tuple[dict[str, str], str | None]:
        """Environment for every CLI call: backend, passphrase reference, this interpreter
        first on PATH (dynamic providers run in a Python the CLI starts), no update nag."""
        extra, provider = self._secrets_env()
        python_dir = str(Path(sys.executable).parent)
        path = os.pathsep.join(p for p in (python_dir, self.environ.get("PATH", "")) if p)
        return {"PULUMI_BACKEND_URL": self.backend_url, "PULUMI_SKIP_UPDATE_CHECK": "true",
                "PATH": path, **extra}, provider

    def workspace_options(self, target: StackProgram, cli: str | None = None) -> Any:
        """LocalWorkspaceOptions for ``target`` (creates the backend and work directories)."""
        from pulumi import automation as auto

        env, provider = self.workspace_env()
        work = self.work_dir(target)
        work.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.backend_url.startswith("file://"):
            Path(self.backend_url.removeprefix("file://")).mkdir(parents=True, exist_ok=True,
                                                                  mode=0o700)
        command = None
        if cli is not None:
            command = auto.PulumiCommand(root=str(Path(cli).parent.parent))
        return auto.LocalWorkspaceOptions(
            work_dir=str(work),
            env_vars=env,
            secrets_provider=provider,
            project_settings=auto.ProjectSettings(
                name=target.project, runtime="python",
                backend=auto.ProjectBackend(url=self.backend_url),
                description="provision cluster stacks (managed by provision; do not edit)"),
            pulumi_command=command,
        )

    @contextmanager
    def _errors(self, op: str, target: StackProgram) -> Iterator[None]:
        """Turn Automation API failures into one clear, actionable error."""
        from pulumi.automation import errors as auto_errors

        try:
            yield
        except auto_errors.ConcurrentUpdateError:
            raise LockHeld(f"another pulumi update of {target.project}/{target.stack} is "
                           "running; wait for it, or clear a stale lock with `pulumi cancel` "
                           f"in {self.work_dir(target)}") from None
        except auto_errors.CommandError as exc:
            raise PulumiFailed(self._explain(op, target, str(exc))) from None
        except FileNotFoundError as exc:  # the CLI vanished between the check and the call
            raise PulumiUnavailable(f"the Pulumi CLI could not be run ({exc.filename}).\n"
                                    f"  {INSTALL_CLI}") from None

    def _explain(self, op: str, target: StackProgram, text: str) -> str:
        for value in self._secret_values():
            text = text.replace(value, "[secret]")
        lines = [ln.strip() for ln in text.splitlines()
                 if ln.strip() and not ln.strip().startswith(("code:", "stdout:"))]
        errors = [ln for ln in lines if "error" in ln.lower()] or lines
        head = "\n  ".join(errors[-8:])
        advice = advice_for(text)
        msg = f"pulumi {op} of {target.project}/{target.stack} failed:\n  {head}"
        return msg + (f"\n  fix: {advice}" if advice else "")

    def _secret_values(self) -> list[str]:
        values = [self.environ.get(PASSPHRASE_ENV) or ""]
        path = self.root / "passphrase"
        if path.exists():
            values.append(path.read_text().strip())
        return [v for v in values if len(v) >= 4]

    # -- stacks ----------------------------------------------------------------------------------
    def stack(self, target: StackProgram) -> Any:
        """The stack, created on first use, with its config set and plugins present."""
        from pulumi import automation as auto

        cli = self.cli()
        with self._errors("stack selection", target):
            stack = auto.create_or_select_stack(
                stack_name=target.stack, project_name=target.project,
                program=target.program or _no_program,
                opts=self.workspace_options(target, cli))
            if target.config:
                stack.set_all_config({k: auto.ConfigValue(v) for k, v in target.config.items()})
            installed = {(p.name, str(p.version).lstrip("v"))
                         for p in stack.workspace.list_plugins()}
            for plugin in target.plugins:
                if (plugin.name, plugin.version.lstrip("v")) not in installed:
                    stack.workspace.install_plugin(plugin.name, f"v{plugin.version.lstrip('v')}")
        return stack

    def preview(self, target: StackProgram, event: Event) -> dict[str, int]:
        """What an update would change: counts per operation (create, update, delete, ...)."""
        stack = self.stack(target)
        with self._errors("preview", target):
            result = stack.preview(on_event=_event_sink(event))
        return dict(result.change_summary)

    def up(self, target: StackProgram, event: Event,
           replace: list[str] | None = None) -> dict[str, Any]:
        """Create or update; ``replace`` lists URNs to delete and recreate. Returns outputs."""
        stack = self.stack(target)
        with self._errors("up", target):
            result = stack.up(on_event=_event_sink(event), replace=replace or None)
        return {k: v.value for k, v in result.outputs.items()}

    def refresh(self, target: StackProgram, event: Event) -> None:
        """Read every resource's real state into the stack (preempted TPUs, stopped VMs)."""
        stack = self.stack(target)
        with self._errors("refresh", target):
            stack.refresh(on_event=_event_sink(event))

    def outputs(self, target: StackProgram) -> dict[str, Any]:
        stack = self.stack(target)
        with self._errors("reading outputs of", target):
            return {k: v.value for k, v in stack.outputs().items()}

    def resources(self, target: StackProgram) -> list[dict[str, Any]]:
        """The stack's resources as stored (urn, type, custom, outputs), from its checkpoint."""
        stack = self.stack(target)
        with self._errors("export", target):
            deployment = stack.export_stack().deployment or {}
        return list(deployment.get("resources") or [])

    def destroy(self, target: StackProgram, event: Event) -> DestroyOutcome:
        """Delete every resource; report what went and what is left (by type and name)."""
        stack = self.stack(target)
        before = _cloud_resources(self.resources(target))
        outcome = DestroyOutcome()
        try:
            with self._errors("destroy", target):
                stack.destroy(on_event=_event_sink(event))
        except PulumiFailed as exc:
            outcome.error = str(exc)
            event(str(exc))
        after = _cloud_resources(self.resources(target))
        outcome.removed = [label for urn, label in before.items() if urn not in after]
        outcome.leftovers = list(after.values())
        if not outcome.leftovers and outcome.error is None:
            with self._errors("stack removal", target):
                stack.workspace.remove_stack(target.stack)
        return outcome


def _no_program() -> None:
    """Destroy, refresh and outputs do not run the program; the workspace still wants one."""


def _cloud_resources(resources: list[dict[str, Any]]) -> dict[str, str]:
    """urn → "type name" of the resources that exist in a cloud (not stacks, components or
    provider configurations)."""
    out = {}
    for r in resources:
        kind = r.get("type", "")
        if not r.get("custom") or kind.startswith("pulumi:providers:"):
            continue
        out[r["urn"]] = f"{kind} {resource_name(r['urn'])}"
    return out


def _event_sink(event: Event) -> Callable[[Any], None]:
    """Engine events → one-line messages: resource steps, failures and warnings."""

    def sink(e: Any) -> None:
        pre = getattr(e, "resource_pre_event", None)
        # the engine's op is an OpType enum (its value is the word: "create", "same", ...)
        op = getattr(pre.metadata.op, "value", pre.metadata.op) if pre is not None else None
        if pre is not None and op not in ("same", "read"):
            event(f"{op} {pre.metadata.type} {resource_name(pre.metadata.urn)}")
        failed = getattr(e, "res_op_failed_event", None)
        if failed is not None:
            event(f"failed: {failed.metadata.type} {resource_name(failed.metadata.urn)}")
        diag = getattr(e, "diagnostic_event", None)
        if diag is not None and diag.severity in ("error", "warning") and diag.message.strip():
            event(f"{diag.severity}: {diag.message.strip()}")

    return sink
