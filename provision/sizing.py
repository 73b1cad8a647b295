"""Size a workload into GPU memory and compute, from first principles.

Everything is in GB = 1e9 bytes. A :class:`Need` has components that are *shared* (split across
all GPUs by tensor/pipeline/ZeRO sharding: weights, gradients, optimizer state, KV cache) and
components every GPU pays in full (*per GPU*: runtime overhead, activations of its micro-batch).
A configuration of G GPUs with C GB each fits when

    shared / G + per_gpu ≤ C × (1 − min_headroom)

Formulas (N = parameters, L = layers, h = hidden size, s = context, b = batch, V = vocabulary):

- Weights: N × bytes(precision); fp32 4, bf16/fp16 2, fp8/int8 1, int4 0.5 + one 16-bit scale
  per group of 128 weights (GPTQ/AWQ). Quantized formats keep the embedding and output matrices
  (2 × V × h) in 16 bits, as GPTQ, AWQ and bitsandbytes do. MoE: every expert is resident, so N
  is the *total* parameter count; compute uses the *active* count.
- KV cache (inference): 2 (K and V) × L × kv_heads × head_dim × s × b × bytes(kv precision).
  When the architecture is unknown, L and h come from N ≈ 12·L·h² with h ≈ 128·L (the shape of
  Llama/Qwen models) and GQA with 8 KV heads of 128 is assumed; the plan says so.
- Training state, mixed precision: weights 2 + gradients 2 + optimizer per parameter: AdamW 12
  (fp32 master copy 4 + two fp32 moments 8) = 16 bytes/param in total; AdamW-8bit 6; SGD with
  momentum 8; Adafactor 4 (factored second moment ≈ 0). In fp32 there is no master copy.
- Activations, training (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
  Transformer Models", 16-bit activations, flash attention so no s² term): 34·s·b·h bytes per
  layer. With activation checkpointing only each layer's input (2·s·b·h) is kept, plus one
  layer being recomputed: (2·L + 34)·s·b·h. Plus fp32 logits for the loss: 4·s·b·V. Per GPU:
  each GPU runs its own micro-batch.
- Activations, inference: one layer's working set for a prefill chunk of min(s, 8192) tokens,
  34·T·h bytes, per GPU (inference frees each layer's activations as it goes).
- LoRA adapters on every linear layer: r × (d_in + d_out) per matrix; with the MLP width taken
  as 3.5·h (Llama/Qwen) that is r × (19.5·h + 2·kv_dim) per layer (q,k,v,o + gate,up,down).
  Adapters are trained in mixed precision: 16 bytes per adapter parameter. QLoRA stores the base
  in NF4 with double quantization: 0.5 + 0.127/8 bytes per parameter (Dettmers et al. 2023).
- Overhead per GPU: CUDA context, cuBLAS/NCCL workspaces and allocator slack: 2.5 GB for
  inference (serving engines add CUDA graphs), 3 GB for training. Rules of thumb, not measured
  here; they matter most on small GPUs.
- Compute: training FLOPs = 6 · N_active · D (forward 2, backward 4 per parameter and token);
  LoRA/QLoRA ≈ 4 · N_active · D (frozen weights need no weight gradients).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from provision.plan.schema import Workload

GB = 1e9
BYTES: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5 + 2.0 / 128,  # 4 bits + a 16-bit scale per group of 128
}
NF4_DOUBLE_QUANT = 0.5 + 0.127 / 8  # QLoRA paper: 0.127 bits/param of quantization constants
OPTIMIZER_BYTES_MIXED = {"adamw": 12.0, "adamw_8bit": 6.0, "sgd": 8.0, "adafactor": 4.0}
OPTIMIZER_BYTES_FP32 = {"adamw": 8.0, "adamw_8bit": 2.0, "sgd": 4.0, "adafactor": 0.0}
OVERHEAD_GB = {"inference": 2.5, "training": 3.0, "finetune": 3.0}
PREFILL_CHUNK = 8192
ACT_BYTES_PER_LAYER = 34  # × s·b·h, 16-bit activations (Korthikanti et al. 2022)
MLP_RATIO = 3.5
FALLBACK_KV_DIM = 8 * 128


@dataclass(frozen=True, slots=True)
class Component:
    """One line of the memory breakdown."""

    name: str
    gb: float  # total over the cluster when shared, per GPU when per_gpu
    per_gpu: bool
    formula: str  # how the figure was computed, with its numbers


@dataclass(frozen=True)
class Shape:
    """Architecture figures the formulas need, either known or estimated."""

    layers: int
    hidden: int
    kv_dim: int  # kv_heads × head_dim
    vocab: int
    estimated: bool


@dataclass(frozen=True)
class Need:
    """What a workload needs, independent of the hardware it will run on."""

    kind: str
    precision: str
    params_b: float
    active_params_b: float
    components: tuple[Component, ...]
    flops: float | None  # total training FLOPs; None for inference
    weight_bytes_per_step: float  # bytes of active weights read per decode step (inference)
    kv_bytes_per_token: float
    warnings: tuple[str, ...] = field(default=())
    multi_gpu_needs_nvlink: bool = False

    @property
    def shared_gb(self) -> float:
        return sum(c.gb for c in self.components if not c.per_gpu)

    @property
    def per_gpu_gb(self) -> float:
        return sum(c.gb for c in self.components if c.per_gpu)

    def load_per_gpu(self, gpus: int) -> float:
        """GB each of ``gpus`` GPUs must hold."""
        return self.shared_gb / gpus + self.per_gpu_gb

    def total_gb(self, gpus: int) -> float:
        return self.shared_gb + self.per_gpu_gb * gpus

    def breakdown(self, gpus: int) -> dict[str, float]:
        """GB per component over the whole cluster of ``gpus`` GPUs."""
        out: dict[str, float] = {}
        for c in self.components:
            out[c.name] = out.get(c.name, 0.0) + (c.gb * gpus if c.per_gpu else c.gb)
        return out

    def fits(self, gpus: int, capacity_gb: float) -> bool:
        """The fit test used everywhere (optimizer and its brute-force reference alike)."""
        return self.load_per_gpu(gpus) <= capacity_gb

    def min_gpus(self, capacity_gb: float, limit: int) -> int | None:
        """Fewest GPUs of ``capacity_gb`` usable GB each that hold the need (≤ limit)."""
        room = capacity_gb - self.per_gpu_gb
        if room <= 0:
            return None
        g = max(1, math.ceil(self.shared_gb / room))
        while g > 1 and self.fits(g - 1, capacity_gb):  # guard against rounding either way
            g -= 1
        while g <= limit and not self.fits(g, capacity_gb):
            g += 1
        return g if g <= limit else None


def shape_of(workload: Workload) -> Shape:
    m = workload.model
    if m.architecture_known:
        layers = int(m.layers)  # type: ignore[arg-type]
        hidden = m.hidden_size or int(m.kv_heads * m.head_dim * 8)  # type: ignore[operator]
        return Shape(layers, hidden, int(m.kv_heads * m.head_dim),  # type: ignore[operator]
                     m.vocab_size or 128_000, estimated=False)
    # N ≈ 12·L·h² with h ≈ 128·L  →  L = (N / (12·128²))^(1/3)
    n = m.params_b * 1e9  # type: ignore[operator]
    layers = max(1, round((n / (12 * 128**2)) ** (1 / 3)))
    hidden = m.hidden_size or 128 * layers
    return Shape(layers, hidden, FALLBACK_KV_DIM, m.vocab_size or 128_000, estimated=True)


def _kv_bytes(workload: Workload) -> float:
    if workload.kv_precision:
        return BYTES[workload.kv_precision] if workload.kv_precision != "int4" else 0.5
    return 1.0 if workload.precision == "fp8" else (4.0 if workload.precision == "fp32" else 2.0)


def _weights(n: float, precision: str, shape: Shape, bytes_per: float | None = None) -> Component:
    per = BYTES[precision] if bytes_per is None else bytes_per
    if per < 2.0:
        embed = 2 * shape.vocab * shape.hidden
        gb = ((n - embed) * per + embed * 2.0) / GB
        formula = (f"{(n - embed) / 1e9:.2f}B params × {per:.3f} B + embeddings "
                   f"{embed / 1e9:.2f}B × 2 B (kept 16-bit)")
    else:
        gb = n * per / GB
        formula = f"{n / 1e9:.2f}B params × {per:g} B ({precision})"
    return Component("weights", gb, False, formula)


def _train_activations(w: Workload, shape: Shape) -> Component:
    s, b, h, L, V = w.context, w.batch, shape.hidden, shape.layers, shape.vocab
    if w.activation_checkpointing:
        layer_bytes = (2 * L + ACT_BYTES_PER_LAYER) * s * b * h
        how = f"(2·{L} + 34)·s·b·h with checkpointing"
    else:
        layer_bytes = ACT_BYTES_PER_LAYER * L * s * b * h
        how = f"34·{L}·s·b·h without checkpointing"
    logits = 4 * s * b * V
    return Component(
        "activations",
        (layer_bytes + logits) / GB,
        True,
        f"{how} + fp32 logits 4·s·b·V (s={s}, b={b}, h={h}, V={V}) per GPU",
    )


def _lora_params(w: Workload, shape: Shape) -> float:
    r, h = w.lora_rank, shape.hidden
    per_layer = r * ((6 + 3 * (1 + MLP_RATIO)) * h + 2 * shape.kv_dim)
    return per_layer * shape.layers


def size(workload: Workload) -> Need:
    """Memory components and compute for ``workload`` (see the module docstring)."""
    w = workload
    shape = shape_of(w)
    n = w.model.params_b * 1e9  # type: ignore[operator]
    n_active = (w.model.active_params_b or w.model.params_b) * 1e9  # type: ignore[operator]
    warnings: list[str] = []
    if shape.estimated:
        warnings.append(
            f"model architecture not given: KV cache and activations estimated for "
            f"{shape.layers} layers, hidden {shape.hidden}, GQA 8×128 KV heads; give "
            "workload.model layers, kv_heads, head_dim (or a known model name) for exact figures"
        )
    if w.model.max_context and w.context > w.model.max_context:
        warnings.append(
            f"context {w.context} exceeds the model's {w.model.max_context}-token maximum"
        )
    overhead = Component(
        "overhead", OVERHEAD_GB[w.kind], True,
        "CUDA context, library workspaces, allocator slack (rule of thumb) per GPU",
    )
    comps: list[Component] = []
    flops: float | None = None
    kv_per_token = 2 * shape.layers * shape.kv_dim * _kv_bytes(w)
    needs_nvlink = False

    if w.kind == "inference":
        comps.append(_weights(n, w.precision, shape))
        kv = kv_per_token * w.context * w.batch
        comps.append(Component(
            "kv_cache", kv / GB, False,
            f"2 × {shape.layers} layers × {shape.kv_dim} (kv_heads×head_dim) × {w.context} ctx "
            f"× {w.batch} batch × {_kv_bytes(w):g} B",
        ))
        t = min(w.context * w.batch, PREFILL_CHUNK)
        comps.append(Component(
            "activations", ACT_BYTES_PER_LAYER * t * shape.hidden / GB, True,
            f"34 × {t} prefill tokens × {shape.hidden} hidden, one layer at a time, per GPU",
        ))
    elif w.kind == "training" or w.method == "full":
        mixed = w.precision != "fp32"
        wbytes = 4.0 if not mixed else 2.0  # fp8 training keeps bf16 weights
        comps.append(Component("weights", n * wbytes / GB, False,
                               f"{n / 1e9:.2f}B × {wbytes:g} B"))
        comps.append(Component("gradients", n * wbytes / GB, False,
                               f"{n / 1e9:.2f}B × {wbytes:g} B"))
        table = OPTIMIZER_BYTES_MIXED if mixed else OPTIMIZER_BYTES_FP32
        ob = table[w.optimizer]
        comps.append(Component(
            "optimizer_state", n * ob / GB, False,
            f"{n / 1e9:.2f}B × {ob:g} B ({w.optimizer}{', fp32 master copy' if mixed else ''})",
        ))
        comps.append(_train_activations(w, shape))
        flops = 6 * n_active * (w.tokens_b or 0) * 1e9 if w.tokens_b else None
        needs_nvlink = True
    else:  # finetune with lora / qlora
        if w.method == "qlora":
            comps.append(_weights(n, w.precision, shape, bytes_per=NF4_DOUBLE_QUANT))
        else:
            comps.append(_weights(n, w.precision, shape))
        p = _lora_params(w, shape)
        comps.append(Component(
            "adapters", p * 16 / GB, False,
            f"{p / 1e6:.0f}M LoRA params (r={w.lora_rank}) × 16 B (weights, grads, AdamW)",
        ))
        comps.append(_train_activations(w, shape))
        flops = 4 * n_active * w.tokens_b * 1e9 if w.tokens_b else None
        if w.method == "qlora":
            warnings.append(
                "QLoRA dequantizes weights on the fly: expect it to run slower than LoRA at "
                "the same MFU setting"
            )
    comps.append(overhead)
    return Need(
        kind=w.kind,
        precision=w.precision,
        params_b=n / 1e9,
        active_params_b=n_active / 1e9,
        components=tuple(comps),
        flops=flops,
        weight_bytes_per_step=n_active * BYTES[w.precision],
        kv_bytes_per_token=kv_per_token,
        warnings=tuple(warnings),
        multi_gpu_needs_nvlink=needs_nvlink,
    )
