"""The optimizer against an exhaustive reference, and each rejection rule on its own."""

from __future__ import annotations

import random

import pytest

from provision.catalog import Catalog, Offering
from provision.catalog.specs import gpu_table
from provision.catalog.synthetic import synthetic_offerings
from provision.optimizer import Criteria, brute_force, optimize, rank_key
from provision.plan.schema import Workload
from provision.sizing import size

WORKLOADS = [
    dict(kind="inference", model="llama-3-8b", context=4096, batch=4),
    dict(kind="inference", model="llama-3-70b", precision="bf16", context=8192, batch=8,
         hours=100),
    dict(kind="inference", model="qwen3-235b-a22b", context=32768, batch=8),
    dict(kind="inference", model="llama-3-405b", precision="fp8", context=8192, batch=4),
    dict(kind="training", model="llama-3-8b", tokens_b=300),
    dict(kind="training", model="llama-3-70b", tokens_b=200),
    dict(kind="finetune", method="qlora", model="llama-3-70b", tokens_b=0.5, context=2048),
    dict(kind="finetune", method="lora", model="qwen2.5-32b", tokens_b=2),
]


def random_criteria(rng: random.Random, workload: dict) -> Criteria:
    has_length = "tokens_b" in workload or "hours" in workload
    return Criteria(
        objective=rng.choice(("cost", "time")),
        min_headroom=rng.choice((0.0, 0.1, 0.2)),
        max_nodes=rng.choice((1, 2, 4, 8)),
        spot=rng.choice(("never", "allowed", "required")),
        max_price_per_hour=rng.choice((None, None, 20.0, 80.0, 400.0)),
        budget_usd=rng.choice((None, 5_000.0, 200_000.0)) if has_length else None,
        deadline_hours=rng.choice((None, 200.0, 2000.0)),
        providers=rng.choice((None, frozenset({"p0", "p1", "p2", "p3"}))),
        regions=rng.choice((None, ("region-1*", "region-4"))),
        require_nvlink=rng.random() < 0.4,
        allow_consumer=rng.random() < 0.5,
        mfu=0.4,
        context=workload.get("context", 4096),
        batch=workload.get("batch", 1),
        hours=workload.get("hours"),
        pin_gpus_per_node=rng.choice((None, None, None, 8)),
    )


def same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return (a.offering, a.spot, a.nodes) == (b.offering, b.spot, b.nodes)


@pytest.mark.parametrize("seed", range(40))
def test_optimize_matches_brute_force_on_random_catalogs(seed):
    rng = random.Random(seed)
    gpus = gpu_table()
    cat = Catalog(gpus=gpus, offerings=synthetic_offerings(240, seed=seed, gpus=gpus,
                                                           regions=8))
    workload = rng.choice(WORKLOADS)
    need = size(Workload.model_validate(workload))
    for _ in range(6):
        crit = random_criteria(rng, workload)
        fast = optimize(need, cat, crit).choice
        slow = brute_force(need, cat, crit)
        assert same(fast, slow), (crit, fast, slow)


def test_ranked_alternatives_are_in_objective_order():
    cat = Catalog(gpus=gpu_table(), offerings=synthetic_offerings(2000, seed=7))
    need = size(Workload.model_validate(WORKLOADS[1]))
    crit = Criteria(spot="allowed", max_nodes=8)
    res = optimize(need, cat, crit)
    keys = [rank_key(c, crit) for c in res.ranked]
    assert keys == sorted(keys) and res.choice is res.ranked[0]


def offering(**kw) -> Offering:
    base = dict(provider="cloud", instance_type="t", region="r1", zone="r1-a", gpu="H100",
                gpu_count=8, vcpus=96.0, memory_gib=1024.0, price=10.0, spot_price=3.0,
                interconnect="nvswitch", network_gbps=3200.0, multi_node=True)
    base.update(kw)
    return Offering(**base)


def catalog(*offerings: Offering) -> Catalog:
    return Catalog(gpus=gpu_table(), offerings=list(offerings))


SERVE_235B = size(Workload.model_validate(WORKLOADS[2]))  # ~550 GB on 8 GPUs


def test_cheapest_that_fits_wins_and_the_cheaper_misfit_says_why():
    small = offering(instance_type="a100x8", gpu="A100", price=5.0, multi_node=False)
    big = offering(instance_type="h100x8", price=10.0)
    res = optimize(SERVE_235B, catalog(small, big), Criteria())
    assert res.choice.offering.instance_type == "h100x8"
    (rej,) = res.rejected_cheaper()
    assert rej.reason_kind == "memory"
    # busiest GPU: 470/8 weights + 50.5/4 KV (4 heads, TP 8) + 2.5 overhead + 1.1 activations
    assert rej.rejected_because.startswith("does not fit: 75.0 GB on the busiest GPU of 8 × A100")
    assert "> 36.0 GB usable of 40 GB" in rej.rejected_because


def test_multi_node_when_one_node_is_too_small():
    need = size(Workload.model_validate(dict(kind="inference", model="llama-3-405b",
                                             context=8192, batch=4)))
    res = optimize(need, catalog(offering(price=10.0)), Criteria(max_nodes=4))
    assert res.choice.nodes == 2 and res.choice.price_per_hour == 20.0
    single = offering(multi_node=False)
    res = optimize(need, catalog(single), Criteria(max_nodes=4))
    assert res.choice is None and res.rejected[0].reason_kind == "memory"


def test_no_nvlink_for_tensor_parallel_in_training():
    need = size(Workload.model_validate(WORKLOADS[4]))
    pcie = offering(interconnect="pcie", instance_type="pcie", price=5.0)
    res = optimize(need, catalog(pcie), Criteria(require_nvlink=True))
    assert res.choice is None
    assert res.rejected[0].rejected_because.startswith("constraints.require_nvlink: pcie")
    assert optimize(need, catalog(pcie), Criteria(require_nvlink=False)).choice is not None


def test_consumer_gpus_need_permission():
    need = size(Workload.model_validate(WORKLOADS[0]))
    rtx = offering(gpu="RTX4090", gpu_count=1, interconnect="pcie", price=0.3)
    assert optimize(need, catalog(rtx), Criteria(allow_consumer=False)).choice is None
    assert optimize(need, catalog(rtx), Criteria(allow_consumer=True)).choice is not None


def test_spot_modes():
    need = size(Workload.model_validate(WORKLOADS[0]))
    o = offering(gpu_count=1, price=4.0, spot_price=1.0)
    assert optimize(need, catalog(o), Criteria(spot="never")).choice.spot is False
    assert optimize(need, catalog(o), Criteria(spot="allowed")).choice.spot is True
    res = optimize(need, catalog(o), Criteria(spot="never"))
    assert res.best_spot is not None and res.best_spot.price_per_hour == 1.0
    no_spot = offering(gpu_count=1, spot_price=None)
    assert optimize(need, catalog(no_spot), Criteria(spot="required")).choice is None


def test_price_budget_and_deadline_reasons():
    need = size(Workload.model_validate(WORKLOADS[4]))  # 8B on 300 B tokens
    o = offering(price=100.0)
    res = optimize(need, catalog(o), Criteria(max_price_per_hour=50.0))
    assert res.rejected[0].reason_kind == "max_price"
    res = optimize(need, catalog(o), Criteria(budget_usd=10.0))
    assert res.rejected[0].reason_kind == "budget"
    assert "over budget" in res.rejected[0].rejected_because
    res = optimize(need, catalog(o), Criteria(deadline_hours=1.0, max_nodes=2))
    assert res.rejected[0].reason_kind == "deadline"


def test_deadline_buys_nodes_and_cost_objective_takes_the_fewest_that_meet_it():
    need = size(Workload.model_validate(WORKLOADS[4]))
    o = offering(price=100.0)
    one = optimize(need, catalog(o), Criteria(max_nodes=16)).choice
    assert one.nodes == 1
    fast = optimize(need, catalog(o), Criteria(max_nodes=16, deadline_hours=one.hours / 3))
    assert fast.choice.nodes == 4  # 3 nodes fall short: 3 × 0.97^log2(3) < 3
    assert fast.choice.hours <= one.hours / 3
    quickest = optimize(need, catalog(o), Criteria(max_nodes=16, objective="time"))
    assert quickest.choice.nodes == 16


def test_time_objective_respects_the_budget():
    need = size(Workload.model_validate(WORKLOADS[4]))
    o = offering(price=100.0)
    base = optimize(need, catalog(o), Criteria(max_nodes=16)).choice
    res = optimize(need, catalog(o), Criteria(max_nodes=16, objective="time",
                                              budget_usd=base.cost_usd * 1.05))
    assert 1 < res.choice.nodes < 16 and res.choice.cost_usd <= base.cost_usd * 1.05


def test_ties_break_deterministically():
    a = offering(provider="b-cloud", instance_type="x")
    b = offering(provider="a-cloud", instance_type="x")
    need = size(Workload.model_validate(WORKLOADS[0]))
    for order in ((a, b), (b, a)):
        assert optimize(need, catalog(*order), Criteria()).choice.offering.provider == "a-cloud"


def test_monthly_billing_charges_whole_months():
    need = size(Workload.model_validate(WORKLOADS[4]))
    o = offering(billing_period="month", period_price=20000.0, price=20000.0 / 730,
                 spot_price=None)
    choice = optimize(need, catalog(o), Criteria(max_nodes=16, deadline_hours=5000)).choice
    months = -(-choice.hours // 730)
    assert choice.cost_usd == pytest.approx(20000.0 * choice.nodes * months)


def test_region_patterns():
    need = size(Workload.model_validate(WORKLOADS[0]))
    east = offering(region="us-east-1", zone="us-east-1a", price=5.0)
    west = offering(region="us-west-2", zone="us-west-2a", price=3.0)
    res = optimize(need, catalog(east, west), Criteria(regions=("us-east-*",)))
    assert res.choice.offering.region == "us-east-1"
