"""The plan.yaml schema (pydantic v2). Unknown keys are errors; every field says what it means.

The schema only checks what can be checked from the file alone (types, ranges, combinations that
can never work). Whether anything in the catalog fits is the optimizer's question (exit 3).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from provision.plan.cloud import AwsTarget, BaremetalTarget, GcpTarget
from provision.plan.job import JobSettings
from provision.plan.lifecycle import Lifecycle
from provision.plan.models import lookup_model, model_names
from provision.plan.schema_base import StrictModel, close_matches
from provision.plan.software import Software
from provision.plan.targets import Access, LocalTarget
from provision.plan.verify_settings import VerifySettings

Precision = Literal["fp32", "bf16", "fp16", "fp8", "int8", "int4"]
TRAINING_PRECISIONS = ("fp32", "bf16", "fp16", "fp8")

# Physical ranges (each well beyond any published model or cluster, so only nonsense is refused)
MAX_PARAMS_B = 100_000.0  # 100 T parameters: ~50× the largest published model
MAX_LAYERS = 2048
MAX_WIDTH = 1 << 20  # hidden size; the largest published models are below 32 k
MAX_HEADS = 1024
MAX_HEAD_DIM = 4096
MAX_VOCAB = 10_000_000
MAX_CONTEXT = 1 << 27  # 134 M tokens; the longest published contexts are 1–10 M
MAX_BATCH = 1 << 20
MAX_TOKENS_B = 1_000_000.0  # 10^15 tokens: ~70× the largest published pre-training run
MAX_LORA_RANK = 8192
MAX_HOURS = 87_600.0  # ten years
MAX_PRICE_PER_HOUR = 1_000_000.0
MAX_BUDGET_USD = 1e10
MAX_EXPERTS = 4096
MAX_GPUS_PER_NODE = 16_384  # a TPU slice counts its chips as one node (v5p: up to 8,960)
MAX_NODES = 4096
MAX_TENSOR_PARALLEL = 64

ParamsB = Annotated[float, Field(gt=0, le=MAX_PARAMS_B)]


class ModelSpec(StrictModel):
    """The model being served or trained: a known name, or its size and architecture."""

    name: str | None = Field(
        None, description="A known model (see `provision plan --list-models`); fills the rest."
    )
    params_b: ParamsB | None = Field(None, description="Total parameters, billions.")
    active_params_b: ParamsB | None = Field(
        None, description="Parameters active per token (MoE), billions; compute scales with it."
    )
    experts: Annotated[int, Field(ge=2, le=MAX_EXPERTS)] | None = Field(
        None, description="MoE: routed experts per layer (decode reads the experts a batch "
        "routes to)."
    )
    experts_per_token: Annotated[int, Field(ge=1, le=MAX_EXPERTS)] | None = Field(
        None, description="MoE: routed experts each token uses (top-k)."
    )
    layers: Annotated[int, Field(gt=0, le=MAX_LAYERS)] | None = Field(
        None, description="Transformer layers (KV-cache sizing).")
    hidden_size: Annotated[int, Field(gt=0, le=MAX_WIDTH)] | None = Field(
        None, description="Model width (activations).")
    kv_heads: Annotated[int, Field(gt=0, le=MAX_HEADS)] | None = Field(
        None, description="Key/value heads (GQA) per layer.")
    head_dim: Annotated[int, Field(gt=0, le=MAX_HEAD_DIM)] | None = Field(
        None, description="Dimension of one attention head.")
    vocab_size: Annotated[int, Field(gt=0, le=MAX_VOCAB)] | None = Field(
        None, description="Vocabulary size.")
    max_context: Annotated[int, Field(gt=0, le=MAX_CONTEXT)] | None = Field(
        None, description="Longest context the model takes.")

    @model_validator(mode="before")
    @classmethod
    def _name_shorthand(cls, data: object) -> object:
        return {"name": data} if isinstance(data, str) else data

    @field_validator("name")
    @classmethod
    def _known(cls, name: str | None) -> str | None:
        if name is not None and lookup_model(name) is None:
            raise ValueError(
                f"unknown model {name!r}{close_matches(name, model_names())} "
                f"Known: {', '.join(model_names())}; or give params_b (and layers, kv_heads, "
                "head_dim for an exact KV cache)"
            )
        return name

    @model_validator(mode="after")
    def _fill(self) -> ModelSpec:
        if self.name:
            known = lookup_model(self.name)
            assert known is not None  # checked by _known
            for field in ("params_b", "active_params_b", "experts", "experts_per_token", "layers",
                          "hidden_size", "kv_heads", "head_dim", "vocab_size", "max_context"):
                if getattr(self, field) is None:
                    setattr(self, field, getattr(known, field))
        if self.params_b is None:
            raise ValueError("give a known model `name` or `params_b` (total parameters, billions)")
        if self.active_params_b is not None and self.active_params_b > self.params_b:
            raise ValueError(
                f"active_params_b ({self.active_params_b}) cannot exceed params_b ({self.params_b})"
            )
        if (self.experts is None) != (self.experts_per_token is None):
            raise ValueError("give both experts and experts_per_token (MoE routing), or neither")
        if self.experts is not None and self.experts_per_token > self.experts:  # type: ignore[operator]
            raise ValueError(f"experts_per_token ({self.experts_per_token}) cannot exceed "
                             f"experts ({self.experts})")
        return self

    @property
    def architecture_known(self) -> bool:
        return None not in (self.layers, self.kv_heads, self.head_dim)


class Workload(StrictModel):
    """What runs on the cluster; sizing turns it into a memory and compute need."""

    kind: Literal["inference", "training", "finetune"] = Field(
        description="inference (serving), training (pre-training), finetune."
    )
    model: ModelSpec
    precision: Precision = Field(
        "bf16",
        description="Weight format. Training: fp32/bf16/fp16/fp8 (mixed precision). "
        "Inference may also use int8/int4 quantized weights.",
    )
    kv_precision: Precision | None = Field(
        None, description="KV-cache format; default bf16 (serving engines keep the KV cache in "
        "the activation dtype, also for fp8 or int4 weights). fp32 plans default to fp32."
    )
    context: Annotated[int, Field(gt=0, le=MAX_CONTEXT)] = Field(
        4096, description="Sequence length in tokens.")
    batch: Annotated[int, Field(gt=0, le=MAX_BATCH)] = Field(
        1,
        description="Inference: concurrent sequences whose KV cache stays resident. "
        "Training: micro-batch (sequences) per GPU.",
    )
    tokens_b: Annotated[float, Field(gt=0, le=MAX_TOKENS_B)] | None = Field(
        None, description="Training/fine-tuning tokens, billions (sets the job's length)."
    )
    method: Literal["full", "lora", "qlora"] | None = Field(
        None, description="Fine-tuning method (kind: finetune; default lora)."
    )
    lora_rank: Annotated[int, Field(gt=0, le=MAX_LORA_RANK)] = Field(
        16, description="LoRA rank r (lora/qlora).")
    optimizer: Literal["adamw", "adamw_8bit", "sgd", "adafactor"] = Field(
        "adamw", description="Optimizer; decides the optimizer-state bytes per trained parameter."
    )
    activation_checkpointing: bool = Field(
        True, description="Recompute activations in the backward pass (training memory)."
    )
    framework: Literal["pytorch", "jax", "pytorch_xla"] = Field(
        "pytorch",
        description="What the job runs on: pytorch (CUDA GPUs), jax or pytorch_xla (GPUs or "
        "TPUs). TPUs are only chosen for jax and pytorch_xla; QLoRA (bitsandbytes) is CUDA-only.",
    )
    tensor_parallel: Annotated[int, Field(ge=1, le=MAX_TENSOR_PARALLEL)] | None = Field(
        None,
        description="Training: tensor-parallel degree inside a node (needs NVLink when > 1). "
        "Default 1: FSDP/ZeRO-3 shards the model state over every GPU, no tensor parallelism. "
        "Serving always uses tensor parallel over each node's GPUs (vLLM/SGLang layout).",
    )
    tf32: bool = Field(
        False, description="fp32 training with TF32 tensor cores on (PyTorch "
        "allow_tf32); off, fp32 runs at the plain FP32 rate."
    )
    mfu: float = Field(
        0.4, gt=0, le=1, description="Model FLOPs utilization against the BF16 dense peak, "
        "assumed for time estimates. fp8 training multiplies it by a measured fp8 speed-up "
        "unless mfu is given."
    )
    hours: Annotated[float, Field(gt=0, le=MAX_HOURS)] | None = Field(
        None, description="A fixed duration (serving, or a time-boxed job) for the cost estimate."
    )

    @model_validator(mode="after")
    def _default_method(self) -> Workload:
        if self.kind == "finetune" and self.method is None:
            self.method = "lora"
        return self

    @property
    def length_known(self) -> bool:
        return self.hours is not None or (self.kind != "inference" and self.tokens_b is not None)


class Resources(StrictModel):
    """An explicit hardware choice. Given fields pin the choice; the optimizer fills the rest."""

    gpu: str | None = Field(None, description="GPU/TPU model, e.g. H100, A100-80GB, tpu-v5e.")
    gpus_per_node: Annotated[int, Field(gt=0, le=MAX_GPUS_PER_NODE)] | None = Field(
        None, description="GPUs (or TPU chips) per node.")
    nodes: Annotated[int, Field(gt=0, le=MAX_NODES)] | None = Field(
        None, description="Number of nodes.")
    provider: str | None = Field(None, description="aws, gcp, lambda, runpod, vast, ...")
    instance_type: str | None = Field(None, description="Provider instance/machine type.")
    offering: str | None = Field(
        None, description="Shorthand 'provider:instance_type' (e.g. aws:p5.48xlarge)."
    )
    region: str | None = Field(None, description="Region or zone.")
    spot: bool | None = Field(None, description="Use spot/preemptible capacity.")

    @model_validator(mode="after")
    def _offering(self) -> Resources:
        if self.offering:
            provider, sep, instance = self.offering.partition(":")
            if not sep or not provider or not instance:
                raise ValueError(
                    f"offering must be 'provider:instance_type' (e.g. aws:p5.48xlarge), "
                    f"got {self.offering!r}"
                )
            for field, value in (("provider", provider), ("instance_type", instance)):
                current = getattr(self, field)
                if current is not None and current != value:
                    raise ValueError(f"offering says {field} {value!r} but {field} is {current!r}")
                setattr(self, field, value)
        return self


class Constraints(StrictModel):
    """Limits the optimizer must honour, and what it optimizes."""

    clouds: list[str] | None = Field(
        None, min_length=1, description="Allowed providers (default: all in the catalog)."
    )
    regions: list[str] | None = Field(
        None, min_length=1, description="Allowed regions/zones; shell-style patterns (us-*)."
    )
    gpus: list[str] | None = Field(None, min_length=1, description="Allowed GPU/TPU models.")
    spot: Literal["never", "allowed", "required"] = Field(
        "never",
        description="Spot/preemptible capacity: never (default; the plan says what spot would "
        "save), allowed, required. Spot needs checkpointing.",
    )
    max_price_per_hour: Annotated[float, Field(gt=0, le=MAX_PRICE_PER_HOUR)] | None = Field(
        None, description="Upper bound on the whole cluster's USD per hour."
    )
    budget_usd: Annotated[float, Field(gt=0, le=MAX_BUDGET_USD)] | None = Field(
        None, description="Upper bound on the estimated total cost (needs a workload length)."
    )
    deadline_hours: Annotated[float, Field(gt=0, le=MAX_HOURS)] | None = Field(
        None,
        description="Longest acceptable training/fine-tuning run, hours. Default 720 (30 days) "
        "for training and fine-tuning; options that would take longer are rejected.",
    )
    objective: Literal["cost", "time"] = Field(
        "cost", description="cost: cheapest that fits; time: fastest (most throughput)."
    )
    min_headroom: float = Field(
        0.10, ge=0, lt=0.9, description="GPU memory kept free, as a fraction (0.10 = 10 %)."
    )
    max_nodes: int = Field(16, gt=0, le=MAX_NODES, description="Most nodes the plan may use.")
    require_nvlink: bool | None = Field(
        None,
        description="Require NVLink/NVSwitch between a node's GPUs. Default: required for "
        "multi-GPU training and full fine-tuning, not for inference or LoRA.",
    )
    allow_consumer: bool | None = Field(
        None,
        description="Allow consumer GPUs (RTX 4090, ...; no ECC). Default: inference only.",
    )


class Plan(StrictModel):
    """A plan.yaml file."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
        title="provision plan.yaml",
    )

    name: str = Field(
        pattern=r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$",
        description="Cluster name: lower-case letters, digits and dashes (used in resource names).",
    )
    target: Literal["auto", "local", "aws", "gcp", "baremetal"] = Field(
        "auto",
        description="Where nodes come from: auto (the optimizer's choice), local (podman "
        "containers on this machine), aws, gcp (GPU VMs or TPU slices), baremetal.",
    )
    workload: Workload | None = Field(None, description="What the cluster is for.")
    resources: Resources | None = Field(None, description="Pin (part of) the hardware choice.")
    constraints: Constraints = Field(default_factory=Constraints)
    local: LocalTarget | None = Field(None, description="Settings for target: local.")
    aws: AwsTarget | None = Field(None, description="Settings for target: aws (or auto).")
    gcp: GcpTarget | None = Field(None, description="Settings for target: gcp (or auto).")
    baremetal: BaremetalTarget | None = Field(
        None, description="The hosts of target: baremetal, and how to power/reinstall them."
    )
    access: Access = Field(default_factory=Access, description="SSH access to the nodes.")
    software: Software | None = Field(
        None, description="What the GPU/TPU nodes run (driver, CUDA, NCCL, MPI, containers, "
        "RDMA); defaults per GPU generation from the compatibility matrix."
    )
    verify: VerifySettings = Field(
        default_factory=VerifySettings, description="How `provision up` verifies the nodes."
    )
    job: JobSettings | None = Field(
        None, description="The workload's command, kept running on the head node."
    )
    lifecycle: Lifecycle | None = Field(
        None, description="Time to live, idle limits, and the checkpoint command spot and "
        "preemptible nodes run when their cloud announces an interruption."
    )
    catalog: list[str] = Field(
        default_factory=list,
        description="Extra catalog files/directories (SkyPilot CSV format), relative to this "
        "file. A file replaces the built-in rows of the providers it lists.",
    )

    @model_validator(mode="after")
    def _something_to_plan(self) -> Plan:
        if self.target == "local":
            if self.local is None:
                self.local = LocalTarget()
            return self
        if self.target == "baremetal":  # the hosts are the hardware; a workload is optional
            return self
        if self.target in ("aws", "gcp") and self.constraints.clouds is None:
            self.constraints.clouds = [self.target]  # the optimizer picks from that cloud only
        if self.workload is None and (self.resources is None or self.resources.gpu is None):
            raise ValueError(
                "give a workload (what to size for), resources.gpu (what to rent), or "
                "target: local"
            )
        return self


Loc = tuple[str | int, ...]


def cross_check(plan: Plan) -> list[tuple[Loc, str]]:
    """Combinations of fields that can never work, each with the field to blame.

    Kept out of the pydantic validators so every message points at the exact line.
    """
    problems: list[tuple[Loc, str]] = []
    w, r, c = plan.workload, plan.resources, plan.constraints
    if w is not None:
        if w.kind != "finetune" and "method" in w.model_fields_set:
            problems.append(
                (("workload", "method"), f"applies to kind: finetune, not kind: {w.kind}")
            )
        if w.kind == "training" and w.precision not in TRAINING_PRECISIONS:
            problems.append((
                ("workload", "precision"),
                f"{w.precision} is an inference weight format; training runs in "
                f"{', '.join(TRAINING_PRECISIONS)} (4-bit fine-tuning is kind: finetune, "
                "method: qlora)",
            ))
        if w.kind == "finetune" and w.method == "full" and w.precision not in TRAINING_PRECISIONS:
            problems.append((
                ("workload", "precision"),
                f"full fine-tuning cannot train {w.precision} weights; use method: qlora for "
                "4-bit base weights, or precision: bf16",
            ))
        if w.kind == "inference" and w.tensor_parallel is not None:
            problems.append((
                ("workload", "tensor_parallel"),
                "applies to training; serving uses tensor parallel over each node's GPUs and "
                "pipeline stages across nodes (the vLLM/SGLang layout)",
            ))
        if w.method == "qlora" and w.framework != "pytorch":
            problems.append((
                ("workload", "framework"),
                f"QLoRA (bitsandbytes) runs on PyTorch with CUDA only, not {w.framework}",
            ))
        if w.tf32 and w.precision != "fp32":
            problems.append((("workload", "tf32"), f"applies to precision: fp32, not "
                             f"{w.precision}"))
        if w.kind == "inference" and w.tokens_b is not None:
            problems.append((
                ("workload", "tokens_b"),
                "is the length of a training run; for serving give workload.hours instead",
            ))
    if r is not None:
        if r.nodes is not None and r.nodes > c.max_nodes:
            problems.append((
                ("resources", "nodes"),
                f"{r.nodes} exceeds constraints.max_nodes ({c.max_nodes})",
            ))
        if r.spot is True and c.spot == "never":
            problems.append((("resources", "spot"), "is true but constraints.spot is never"))
        if r.spot is False and c.spot == "required":
            problems.append((("resources", "spot"), "is false but constraints.spot is required"))
        if r.provider and c.clouds and r.provider not in c.clouds:
            problems.append((
                ("resources", "provider"),
                f"{r.provider!r} is not in constraints.clouds {c.clouds}",
            ))
        if r.gpu and c.gpus and r.gpu not in c.gpus:
            problems.append(
                (("resources", "gpu"), f"{r.gpu!r} is not in constraints.gpus {c.gpus}")
            )
    if "local" in plan.model_fields_set and plan.target != "local":
        problems.append((("local",), f"applies to target: local, not target: {plan.target}"))
    for section, targets in (("aws", ("aws", "auto")), ("gcp", ("gcp", "auto")),
                             ("baremetal", ("baremetal",))):
        if section in plan.model_fields_set and plan.target not in targets:
            problems.append(((section,), f"applies to target: {' or '.join(targets)}, not "
                             f"target: {plan.target}"))
    if plan.target == "baremetal" and plan.baremetal is None:
        problems.append((("target",), "baremetal needs a `baremetal:` section listing the hosts"))
    if plan.target in ("aws", "gcp") and c.clouds and plan.target not in c.clouds:
        problems.append((("constraints", "clouds"), f"{c.clouds} does not include the target "
                         f"{plan.target!r}"))
    if c.budget_usd is not None and (w is None or not w.length_known):
        problems.append((
            ("constraints", "budget_usd"),
            "needs a workload with a length to compare against: workload.tokens_b "
            "(training) or workload.hours",
        ))
    return problems


def json_schema() -> dict:
    """The JSON Schema editors use to validate plan.yaml (`provision schema`)."""
    return Plan.model_json_schema()
