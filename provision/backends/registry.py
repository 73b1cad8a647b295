"""Which backend serves a plan: a table from name to a lazily imported class.

Backends are imported only when chosen, so a `local` run never loads pulumi and a cloud run
never loads podman helpers. Adding a backend is one line in :data:`BACKENDS`.

Constructors: ``local`` takes no arguments; the Pulumi-driven backends take
``(state_dir, *, runner=None, backend_url=None, detect_cidr=detect_public_ip)``, where
``state_dir`` is the cluster's state directory, under which ``pulumi/`` holds the stack state
(see provision.backends.pulumi_runner).
"""

from __future__ import annotations

import importlib
from typing import Any

from provision.backends.base import Backend
from provision.errors import InputError

BACKENDS: dict[str, str] = {
    "local": "provision.backends.local:LocalBackend",
    "aws": "provision.backends.aws:AwsBackend",
    "gcp": "provision.backends.gcp:GcpBackend",
    "baremetal": "provision.backends.baremetal:BaremetalBackend",
}

# Plan targets that are not a provider name map here; `auto` follows the optimizer's choice.
PROVIDER_BACKENDS: dict[str, str] = {"aws": "aws", "gcp": "gcp"}


def names() -> list[str]:
    return sorted(BACKENDS)


def backend_class(name: str) -> type:
    target = BACKENDS.get(name)
    if target is None:
        raise InputError(f"no backend {name!r}; available: {', '.join(names())}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def backend_name(target: str, provider: str | None = None) -> str:
    """The backend for a plan's ``target``; for ``auto``, the chosen offering's ``provider``."""
    if target != "auto":
        if target not in BACKENDS:
            raise InputError(f"target {target!r} has no backend; available: {', '.join(names())}")
        return target
    if provider is None:
        raise InputError("target: auto needs the optimizer's choice to pick a backend")
    name = PROVIDER_BACKENDS.get(provider)
    if name is None:
        raise InputError(
            f"the optimizer chose {provider}, which provision cannot create nodes on yet "
            f"(backends: {', '.join(sorted(PROVIDER_BACKENDS))}); add constraints.clouds: "
            f"[{', '.join(sorted(PROVIDER_BACKENDS))}] or set target")
    return name


def get_backend(name: str, **options: Any) -> Backend:
    """An instance of backend ``name``, constructed with ``options``."""
    return backend_class(name)(**options)
