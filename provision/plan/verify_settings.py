"""plan.yaml `verify:`: how `provision up` measures the nodes it converged."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from provision.plan.schema_base import StrictModel


class Threshold(StrictModel):
    """Per-check bands, as fractions of the reference figure (or a reference of your own)."""

    fail_below: float | None = Field(None, gt=0, le=2, description="Fail below this × reference.")
    warn_below: float | None = Field(None, gt=0, le=2, description="Warn below this × reference.")
    reference: float | None = Field(None, gt=0, description="Your own known-good figure.")

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if (self.fail_below is not None and self.warn_below is not None
                and self.warn_below < self.fail_below):
            raise ValueError("warn_below must be at least fail_below")
        return self


class VerifySettings(StrictModel):
    """The last stage of `provision up`: judge every GPU/TPU node against its SKU's figures."""

    enabled: bool = Field(True, description="Run verify at the end of `provision up`.")
    level: Literal["quick", "standard", "full"] = Field(
        "standard",
        description="quick: inventory, topology, NVLink, XID/ECC, DCGM r1 (seconds); standard: "
        "+ nvbandwidth, single-node NCCL, DCGM r2 (minutes); full: + multi-node NCCL, "
        "InfiniBand bandwidth, DCGM r3.",
    )
    strict: bool = Field(False, description="Fail `up` on warnings too.")
    timeout_seconds: int = Field(300, gt=0, le=7200, description="Per-tool time limit.")
    thresholds: dict[str, Threshold] = Field(
        default_factory=dict,
        description="Per-check overrides, e.g. nccl.all_reduce: {fail_below: 0.85}.",
    )

    def overrides(self) -> dict[str, dict[str, float]]:
        return {name: t.model_dump(exclude_none=True) for name, t in self.thresholds.items()}
