"""Built-in table of well-known models (models.yaml) so a plan can say ``model: llama-3-70b``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from provision.datacache import load_yaml


@dataclass(frozen=True, slots=True)
class KnownModel:
    name: str
    params_b: float
    active_params_b: float | None
    layers: int
    hidden_size: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    max_context: int
    source: str
    experts: int | None = None  # MoE: routed experts per layer
    experts_per_token: int | None = None  # MoE: top-k routed experts per token


def model_key(name: str) -> str:
    """Lookup key: lower case, org prefix dropped, separators unified."""
    name = name.strip().lower().rsplit("/", 1)[-1]
    return re.sub(r"[\s_]+", "-", name)


@cache
def known_models() -> dict[str, KnownModel]:
    """Every name and alias mapped to its model."""
    raw = load_yaml(resources.files("provision.plan") / "models.yaml")
    table: dict[str, KnownModel] = {}
    for name, d in raw.items():
        aliases = d.pop("aliases", [])
        model = KnownModel(name=name, active_params_b=d.pop("active_params_b", None), **d)
        for alias in (name, *aliases):
            table[model_key(alias)] = model
    return table


def lookup_model(name: str) -> KnownModel | None:
    return known_models().get(model_key(name))


def model_names() -> list[str]:
    return sorted({m.name for m in known_models().values()})
