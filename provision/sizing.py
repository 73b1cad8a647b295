"""Size a workload into GPU memory and compute, from first principles.

Everything is in GB = 1e9 bytes. A :class:`Need` lists memory components; how each lands on
the GPUs depends on the layout (:class:`Layout`), and fit is judged on the *busiest* GPU:

    peak_gb(layout) ≤ C × (1 − min_headroom)

Layouts, as the engines that run the workload lay it out:

- Serving (vLLM, SGLang): tensor parallel (TP) over each node's GPUs, pipeline stages (PP)
  across nodes. Weights split over every GPU. The KV cache splits by KV heads over TP ranks and
  by layers over stages; when TP exceeds the KV heads the engines *replicate* heads, so each GPU
  holds max(1, ⌈kv_heads / tp⌉) heads of its stage's ⌈L / pp⌉ layers. DeepSeek's MLA latent
  cache (one "head") is therefore not split across TP ranks at all. TPU slices run JAX, which
  shards the cache over every chip.
- Training and fine-tuning: FSDP / ZeRO-3 shards weights, gradients and optimizer state over
  every GPU; each GPU runs its own micro-batch, so activations are per GPU. With
  ``tensor_parallel: t`` (Megatron-style, sequence parallel) activations divide by t.

Formulas (N = parameters, L = layers, h = hidden size, s = context, b = batch, V = vocabulary):

- Weights: N × bytes(precision); fp32 4, bf16/fp16 2, fp8/int8 1, int4 0.5 + one 16-bit scale
  per group of 128 weights (GPTQ/AWQ). Quantized formats keep the embedding and output matrices
  (2 × V × h) in 16 bits, as GPTQ, AWQ and bitsandbytes do. MoE: every expert is resident, so N
  is the *total* parameter count; compute uses the *active* count.
- KV cache (inference): 2 (K and V) × L × kv_heads × head_dim × s × b × bytes(kv precision).
  The KV format is bf16 unless the plan sets ``kv_precision`` (engines keep KV in the
  activation dtype by default, also for fp8 or int4 weights); fp32 plans keep fp32.
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
- Decode reads per step (inference): the weights a step touches plus the resident KV cache.
  Dense models touch every weight. An MoE layer routes each of B tokens to k of E experts, so a
  step touches E·(1 − (1 − k/E)^B) distinct experts in expectation (each expert is missed by a
  token with probability 1 − k/E), plus the shared weights (attention, embeddings, shared
  experts). Expert and shared sizes follow from the total and active counts:
  per expert = (N − N_active) / (E − k), shared = N_active − k · per expert.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from provision.plan.schema import Workload
from provision.search import first_true

GB = 1e9
BYTES: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5 + 2.0 / 128,  # 4 bits + a 16-bit scale per group of 128
}
KV_BYTES: dict[str, float] = {**BYTES, "int4": 0.5}
NF4_DOUBLE_QUANT = 0.5 + 0.127 / 8  # QLoRA paper: 0.127 bits/param of quantization constants
OPTIMIZER_BYTES_MIXED = {"adamw": 12.0, "adamw_8bit": 6.0, "sgd": 8.0, "adafactor": 4.0}
OPTIMIZER_BYTES_FP32 = {"adamw": 8.0, "adamw_8bit": 2.0, "sgd": 4.0, "adafactor": 0.0}
OVERHEAD_GB = {"inference": 2.5, "training": 3.0, "finetune": 3.0}
PREFILL_CHUNK = 8192
ACT_BYTES_PER_LAYER = 34  # × s·b·h, 16-bit activations (Korthikanti et al. 2022)
MLP_RATIO = 3.5
FALLBACK_KV_HEADS = 8
FALLBACK_HEAD_DIM = 128


@dataclass(frozen=True, slots=True)
class Component:
    """One line of the memory breakdown.

    ``split`` says how the component lands on a layout's GPUs: shared components ("even")
    divide over every GPU, the KV cache ("kv") by heads over TP ranks and layers over stages;
    per-GPU components are paid in full on each GPU ("even") or divided by the TP degree
    ("tp": training activations under tensor + sequence parallelism)."""

    name: str
    gb: float  # total over the cluster when shared, per GPU when per_gpu
    per_gpu: bool
    formula: str  # how the figure was computed, with its numbers
    split: str = "even"


@dataclass(frozen=True)
class Shape:
    """Architecture figures the formulas need, either known or estimated."""

    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    vocab: int
    estimated: bool

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim


@dataclass(frozen=True, slots=True)
class Layout:
    """How the need is placed on ``gpus_per_node`` × ``nodes`` GPUs (see the module docstring).

    ``kv_share`` is the fraction of the whole KV cache the busiest GPU holds; ``head_share``
    the fraction of each layer's KV heads one GPU holds (1/tp, or more when replicated)."""

    gpus_per_node: int
    nodes: int
    tp: int
    pp: int
    kv_share: float
    head_share: float = 1.0

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.nodes


@dataclass(frozen=True)
class Need:
    """What a workload needs, independent of the hardware it will run on."""

    kind: str
    precision: str
    params_b: float
    active_params_b: float
    components: tuple[Component, ...]
    flops: float | None  # total training FLOPs; None for inference
    weight_bytes_per_step: float  # bytes of weights one decode step reads (inference)
    kv_bytes_per_token: float
    warnings: tuple[str, ...] = field(default=())
    layers: int = 1
    kv_heads: int = 1
    tensor_parallel: int = 1  # training: TP degree asked for (1 = FSDP only)
    framework: str = "pytorch"
    method: str | None = None
    tf32: bool = False
    mfu_given: bool = False  # the plan set mfu itself (no fp8 speed-up applied on top)

    # -- whole-cluster figures ------------------------------------------------------------------
    @property
    def shared_gb(self) -> float:
        """Model state split over the GPUs: weights, gradients, optimizer state, KV cache."""
        return sum(c.gb for c in self.components if not c.per_gpu)

    @property
    def per_gpu_gb(self) -> float:
        """What every GPU pays in full: activations of its micro-batch, runtime overhead."""
        return sum(c.gb for c in self.components if c.per_gpu)

    @property
    def asks_tensor_parallel(self) -> bool:
        return self.kind != "inference" and self.tensor_parallel > 1

    # -- placement on a layout -------------------------------------------------------------------
    def layout(self, gpus_per_node: int, nodes: int, *, shards_kv: bool = False) -> Layout:
        """The layout the serving engine or trainer uses on this hardware. ``shards_kv``: the
        runtime shards the KV cache over every device (JAX on TPU slices)."""
        gpus = gpus_per_node * nodes
        if self.kind != "inference":
            tp = max(1, min(self.tensor_parallel, gpus_per_node))
            return Layout(gpus_per_node, nodes, tp, 1, 1.0 / gpus, 1.0 / tp)
        tp, pp = gpus_per_node, nodes
        if shards_kv:
            return Layout(gpus_per_node, nodes, tp, pp, 1.0 / gpus, 1.0 / tp)
        heads = max(1, -(-self.kv_heads // tp))  # replicated when tp > kv_heads
        layers = -(-self.layers // pp) if pp <= self.layers else 1
        head_share = heads / self.kv_heads
        return Layout(gpus_per_node, nodes, tp, pp, head_share * layers / self.layers,
                      head_share)

    def placed(self, layout: Layout) -> dict[str, float]:
        """GB of each component on the busiest GPU of ``layout``."""
        out: dict[str, float] = {}
        for c in self.components:
            if c.per_gpu:
                gb = c.gb / layout.tp if c.split == "tp" else c.gb
            else:
                gb = c.gb * layout.kv_share if c.split == "kv" else c.gb / layout.gpus
            out[c.name] = out.get(c.name, 0.0) + gb
        return out

    def peak_gb(self, layout: Layout) -> float:
        """Memory on the busiest GPU of ``layout``: what fit and headroom are judged on."""
        return sum(self.placed(layout).values())

    def breakdown(self, layout: Layout) -> dict[str, float]:
        """GB per component over the whole cluster (replicated KV heads counted per copy)."""
        return {k: v * layout.gpus for k, v in self.placed(layout).items()}

    def total_gb(self, layout: Layout) -> float:
        return sum(self.breakdown(layout).values())

    def fits(self, layout: Layout, capacity_gb: float) -> bool:
        """The fit test used everywhere (optimizer and its brute-force reference alike)."""
        return self.peak_gb(layout) <= capacity_gb

    def min_nodes(self, gpus_per_node: int, capacity_gb: float, limit: int, *,
                  shards_kv: bool = False) -> int | None:
        """Fewest nodes (≤ limit) of ``gpus_per_node`` GPUs with ``capacity_gb`` usable GB
        each that hold the need, or None. The busiest GPU's load never grows with the node
        count, so a binary search finds it in O(log limit) fit tests."""
        if limit < 1:
            return None

        def ok(n: int) -> bool:
            return self.fits(self.layout(gpus_per_node, n, shards_kv=shards_kv), capacity_gb)

        return first_true(1, limit, ok) if ok(limit) else None


def shape_of(workload: Workload) -> Shape:
    m = workload.model
    vocab = m.vocab_size or 128_000
    if m.architecture_known:
        layers = int(m.layers)  # type: ignore[arg-type]
        hidden = m.hidden_size or int(m.kv_heads * m.head_dim * 8)  # type: ignore[operator]
        return Shape(layers, hidden, int(m.kv_heads), int(m.head_dim),  # type: ignore[arg-type]
                     vocab, estimated=False)
    # N ≈ 12·L·h² with h ≈ 128·L  →  L = (N / (12·128²))^(1/3)
    n = m.params_b * 1e9  # type: ignore[operator]
    layers = max(1, round((n / (12 * 128**2)) ** (1 / 3)))
    hidden = m.hidden_size or 128 * layers
    return Shape(layers, hidden, m.kv_heads or FALLBACK_KV_HEADS,
                 m.head_dim or FALLBACK_HEAD_DIM, vocab, estimated=True)


def kv_bytes(workload: Workload) -> float:
    """Bytes per KV value: the plan's kv_precision, else the activation dtype (bf16; fp32 for
    fp32 plans), whatever the weight format."""
    if workload.kv_precision:
        return KV_BYTES[workload.kv_precision]
    return 4.0 if workload.precision == "fp32" else 2.0


def moe_split(workload: Workload) -> tuple[float, float] | None:
    """(shared parameters, parameters per routed expert) of an MoE model, or None."""
    m = workload.model
    if not (m.experts and m.experts_per_token and m.active_params_b):
        return None
    e, k = m.experts, m.experts_per_token
    if e <= k:
        return None
    per_expert = (m.params_b - m.active_params_b) * 1e9 / (e - k)  # type: ignore[operator]
    shared = m.active_params_b * 1e9 - k * per_expert
    return max(0.0, shared), per_expert


def distinct_experts(experts: int, top_k: int, tokens: int) -> float:
    """Expected distinct experts ``tokens`` tokens route to (uniform routing): each expert is
    missed by one token with probability 1 − k/E, so it is used with 1 − (1 − k/E)^B."""
    return experts * (1.0 - (1.0 - top_k / experts) ** tokens)


def decode_weight_bytes(workload: Workload, n_active: float) -> tuple[float, str]:
    """Bytes of weights one decode step of ``batch`` sequences reads, and how."""
    per = BYTES[workload.precision]
    split = moe_split(workload)
    if split is None:
        return n_active * per, f"{n_active / 1e9:.1f}B active params × {per:g} B"
    shared, per_expert = split
    m, b = workload.model, workload.batch
    used = distinct_experts(m.experts, m.experts_per_token, b)  # type: ignore[arg-type]
    touched = shared + used * per_expert
    return touched * per, (f"{shared / 1e9:.1f}B shared + {used:.1f} of {m.experts} experts "
                           f"× {per_expert / 1e9:.2f}B (batch {b}, top-{m.experts_per_token}) "
                           f"× {per:g} B")


def _weights(n: float, precision: str, shape: Shape, bytes_per: float | None = None) -> Component:
    per = BYTES[precision] if bytes_per is None else bytes_per
    if per < 2.0:
        embed = min(n, 2 * shape.vocab * shape.hidden)
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
    tp = w.tensor_parallel or 1
    return Component(
        "activations",
        (layer_bytes + logits) / GB,
        True,
        f"{how} + fp32 logits 4·s·b·V (s={s}, b={b}, h={h}, V={V}) per GPU"
        + (f", ÷ {tp} tensor-parallel ranks" if tp > 1 else ""),
        split="tp",
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
            f"{shape.layers} layers, hidden {shape.hidden}, GQA {shape.kv_heads}×"
            f"{shape.head_dim} KV heads; give workload.model layers, kv_heads, head_dim (or a "
            "known model name) for exact figures"
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
    kvb = kv_bytes(w)
    kv_per_token = 2 * shape.layers * shape.kv_dim * kvb
    step_bytes, _ = decode_weight_bytes(w, n_active)

    if w.kind == "inference":
        comps.append(_weights(n, w.precision, shape))
        kv = kv_per_token * w.context * w.batch
        comps.append(Component(
            "kv_cache", kv / GB, False,
            f"2 × {shape.layers} layers × {shape.kv_heads}×{shape.head_dim} (kv_heads×head_dim)"
            f" × {w.context} ctx × {w.batch} batch × {kvb:g} B",
            split="kv",
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
        weight_bytes_per_step=step_bytes,
        kv_bytes_per_token=kv_per_token,
        warnings=tuple(warnings),
        layers=shape.layers,
        kv_heads=shape.kv_heads,
        tensor_parallel=w.tensor_parallel or 1,
        framework=w.framework,
        method=w.method,
        tf32=w.tf32,
        mfu_given="mfu" in w.model_fields_set,
    )
