"""Sizing formulas against hand-computed figures (the arithmetic is spelled out in each test)."""

from __future__ import annotations

import math

import pytest

from provision.plan.schema import Workload
from provision.sizing import size


def need_for(**spec):
    return size(Workload.model_validate(spec))


def comp(need, name):
    return next(c for c in need.components if c.name == name)


def test_inference_bf16_llama70b_by_hand():
    n = need_for(kind="inference", model="llama-3-70b", precision="bf16", context=8192, batch=4)
    assert comp(n, "weights").gb == pytest.approx(70.6e9 * 2 / 1e9)  # 141.2 GB
    # KV: 2 (K,V) × 80 layers × 8 kv heads × 128 dim × 8192 tokens × 4 seqs × 2 bytes
    assert comp(n, "kv_cache").gb == pytest.approx(2 * 80 * 8 * 128 * 8192 * 4 * 2 / 1e9)
    assert comp(n, "kv_cache").gb == pytest.approx(10.737418, rel=1e-6)
    # one layer's working set for a prefill chunk of 8192 tokens: 34 × 8192 × 8192 bytes
    act = comp(n, "activations")
    assert act.per_gpu and act.gb == pytest.approx(34 * 8192 * 8192 / 1e9)
    assert comp(n, "overhead").gb == 2.5 and comp(n, "overhead").per_gpu
    assert n.shared_gb == pytest.approx(141.2 + 10.737418, rel=1e-6)
    # on 8 GPUs with TP 8 and 8 KV heads: one head per GPU, nothing replicated
    layout = n.layout(8, 1)
    assert (layout.tp, layout.pp, layout.kv_share) == (8, 1, 1 / 8)
    assert n.total_gb(layout) == pytest.approx(n.shared_gb + 8 * (2.5 + 34 * 8192 * 8192 / 1e9))
    assert n.flops is None


def test_int4_keeps_embeddings_in_16_bit():
    n = need_for(kind="inference", model="llama-3-70b", precision="int4", context=1024)
    embed = 2 * 128256 * 8192  # input embedding + output head, 16-bit
    expected = ((70.6e9 - embed) * (0.5 + 2 / 128) + embed * 2) / 1e9
    assert comp(n, "weights").gb == pytest.approx(expected)
    assert 36 < expected < 40  # "70B at INT4 ≈ 35 GB" plus scales and 16-bit embeddings


@pytest.mark.parametrize(("precision", "per_param"), [("fp32", 4), ("fp16", 2), ("int8", 1)])
def test_bytes_per_parameter_table(precision, per_param):
    n = need_for(kind="inference", model={"params_b": 7, "layers": 32, "kv_heads": 8,
                                          "head_dim": 128, "hidden_size": 4096,
                                          "vocab_size": 32000}, precision=precision)
    if per_param >= 2:
        assert comp(n, "weights").gb == pytest.approx(7 * per_param)
    else:
        embed = 2 * 32000 * 4096
        assert comp(n, "weights").gb == pytest.approx(((7e9 - embed) * 1 + embed * 2) / 1e9)


def test_training_mixed_precision_adamw_is_16_bytes_per_param():
    n = need_for(kind="training", model="llama-3-8b", tokens_b=2000, context=4096)
    state = sum(comp(n, k).gb for k in ("weights", "gradients", "optimizer_state"))
    assert state == pytest.approx(8.03 * 16)  # 2 + 2 + 12 bytes per parameter
    assert comp(n, "optimizer_state").gb == pytest.approx(8.03 * 12)
    # checkpointed activations: (2·32 + 34)·s·b·h + fp32 logits 4·s·b·V, per GPU
    s, h, v = 4096, 4096, 128256
    assert comp(n, "activations").gb == pytest.approx(((2 * 32 + 34) * s * h + 4 * s * v) / 1e9)
    assert n.flops == pytest.approx(6 * 8.03e9 * 2000e9)  # 6·N·D = 9.636e22
    assert not n.asks_tensor_parallel  # FSDP by default: no NVLink requirement


def test_activations_without_checkpointing():
    n = need_for(kind="training", model="llama-3-8b", tokens_b=1, context=2048, batch=2,
                 activation_checkpointing=False)
    s, b, h, L, v = 2048, 2, 4096, 32, 128256
    assert comp(n, "activations").gb == pytest.approx((34 * L * s * b * h + 4 * s * b * v) / 1e9)


@pytest.mark.parametrize(("opt", "state"), [("adamw_8bit", 6), ("sgd", 8), ("adafactor", 4)])
def test_cheaper_optimizers(opt, state):
    n = need_for(kind="training", model="llama-3-8b", tokens_b=1, optimizer=opt)
    assert comp(n, "optimizer_state").gb == pytest.approx(8.03 * state)


def test_fp32_training_has_no_master_copy():
    n = need_for(kind="training", model="llama-3-8b", tokens_b=1, precision="fp32")
    assert comp(n, "weights").gb == pytest.approx(8.03 * 4)
    assert comp(n, "optimizer_state").gb == pytest.approx(8.03 * 8)


def test_qlora_70b_does_not_fit_a_24gb_gpu():
    n = need_for(kind="finetune", method="qlora", model="llama-3-70b", tokens_b=0.1,
                 context=2048)
    embed = 2 * 128256 * 8192
    assert comp(n, "weights").gb == pytest.approx(((70.6e9 - embed) * (0.5 + 0.127 / 8)
                                                   + embed * 2) / 1e9)
    # LoRA on q,k,v,o,gate,up,down: r × (19.5·h + 2·kv_dim) per layer
    lora = 16 * (19.5 * 8192 + 2 * 1024) * 80
    assert lora == pytest.approx(207_093_760)
    assert comp(n, "adapters").gb == pytest.approx(lora * 16 / 1e9)
    assert n.peak_gb(n.layout(1, 1)) > 24  # "70B QLoRA on one 24 GB GPU" does not hold
    assert n.flops == pytest.approx(4 * 70.6e9 * 0.1e9)  # frozen base: 4·N·D


def test_lora_keeps_base_weights_at_precision():
    n = need_for(kind="finetune", method="lora", model="llama-3-8b", tokens_b=1)
    assert comp(n, "weights").gb == pytest.approx(8.03 * 2)
    assert not any(c.name == "optimizer_state" for c in n.components)


def test_moe_weights_use_total_and_compute_uses_active():
    n = need_for(kind="training", model="qwen3-235b-a22b", tokens_b=10)
    assert comp(n, "weights").gb == pytest.approx(235 * 2)
    assert n.flops == pytest.approx(6 * 22e9 * 10e9)
    serve = need_for(kind="inference", model="qwen3-235b-a22b", context=32768, batch=8)
    assert comp(serve, "weights").gb == pytest.approx(470)
    # 94 layers × 4 KV heads × 128 dim: 2·94·512·32768·8·2 bytes ≈ 50.5 GB, inside the
    # article's 50–100 GB range
    assert comp(serve, "kv_cache").gb == pytest.approx(2 * 94 * 4 * 128 * 32768 * 8 * 2 / 1e9)
    # decode reads the experts the batch routes to, not only the 22 B active: ~199 GB
    assert serve.weight_bytes_per_step / 1e9 == pytest.approx(198.9, abs=0.1)


def test_unknown_architecture_is_estimated_and_says_so():
    n = need_for(kind="inference", model={"params_b": 70}, context=4096)
    # L = round((70e9 / (12 · 128²))^(1/3)) = 71 layers, GQA 8 × 128
    layers = round((70e9 / (12 * 128**2)) ** (1 / 3))
    assert layers == 71
    assert comp(n, "kv_cache").gb == pytest.approx(2 * layers * 1024 * 4096 * 2 / 1e9)
    assert any("architecture not given" in w for w in n.warnings)


def test_context_beyond_model_maximum_warns():
    n = need_for(kind="inference", model="llama-2-70b", context=8192)
    assert any("exceeds the model's 4096" in w for w in n.warnings)


def test_kv_cache_stays_bf16_for_fp8_weights_unless_the_plan_says():
    # vLLM/SGLang keep the KV cache in the activation dtype (kv_cache_dtype "auto") even for
    # fp8 weights: 2 bytes per value unless kv_precision asks for fp8
    n8 = need_for(kind="inference", model="llama-3-8b", precision="fp8", context=4096)
    n16 = need_for(kind="inference", model="llama-3-8b", precision="bf16", context=4096)
    kv8 = need_for(kind="inference", model="llama-3-8b", precision="fp8", context=4096,
                   kv_precision="fp8")
    assert comp(n8, "kv_cache").gb == pytest.approx(comp(n16, "kv_cache").gb)
    assert comp(n16, "kv_cache").gb == pytest.approx(2 * 32 * 8 * 128 * 4096 * 2 / 1e9)
    assert comp(kv8, "kv_cache").gb == pytest.approx(comp(n16, "kv_cache").gb / 2)


def test_min_nodes_is_the_smallest_count_that_fits():
    n = need_for(kind="inference", model="qwen3-235b-a22b", context=32768, batch=8)
    for capacity in (20.0, 43.2, 72.0, 126.9):
        got = n.min_nodes(8, capacity, 10_000)
        expected = next(x for x in range(1, 10_000) if n.fits(n.layout(8, x), capacity))
        assert got == expected
    assert n.min_nodes(8, 3.0, 10_000) is None  # per-GPU overhead alone exceeds the capacity
    assert n.min_nodes(8, 20.0, 1) is None  # limit respected


def test_training_time_formula():
    from provision.catalog import load_catalog
    from provision.estimate import training_hours

    cat = load_catalog()
    n = need_for(kind="training", model="llama-3-8b", tokens_b=2000)
    p5 = next(o for o in cat.offerings if o.instance_type == "p5.48xlarge")
    hours = training_hours(n, cat.gpus["H100"], p5, 1, 0.4)
    assert hours == pytest.approx(6 * 8.03e9 * 2000e9 / (8 * 989e12 * 0.4) / 3600)
    two = training_hours(n, cat.gpus["H100"], p5, 2, 0.4)
    # two nodes: twice the GPUs at 0.97 efficiency per doubling (3,200 Gb/s EFA)
    assert two == pytest.approx(hours / 2 / 0.97)
    assert math.isclose(training_hours(n, cat.gpus["H100"], p5, 4, 0.4), hours / 4 / 0.97**2)
