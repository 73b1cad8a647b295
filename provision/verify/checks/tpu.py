"""TPU checks from tpu_check.py's JSON: every chip visible on the TPU platform with a correct
``psum`` (tpu.chips), and the psum bus bandwidth against the generation's ICI figure
(tpu.ici_bandwidth; reported with its ratio to peak, judged when a reference is set).
"""

from __future__ import annotations

from provision.verify.checks.base import HostContext, judge_metric, unavailable
from provision.verify.model import Check
from provision.verify.parsers.tpu import parse_tpu_check

TPU_FILE = "tpu-check.json"


def check_tpu(ctx: HostContext) -> list[Check]:
    art = ctx.artifact(TPU_FILE)
    if problem := art.problem():
        return unavailable(["tpu.chips", "tpu.ici_bandwidth"], problem)
    parsed = parse_tpu_check(art.text or "")
    if parsed.local_chips is None:
        why = "; ".join(parsed.errors) or "no chip count"
        return unavailable(["tpu.chips", "tpu.ici_bandwidth"], f"{TPU_FILE}: {why}")
    want = ctx.expect_count
    problems = []
    if parsed.platform != "tpu":
        problems.append(f"ran on {parsed.platform} devices, not TPU chips")
    if parsed.local_chips != want:
        problems.append(f"{parsed.local_chips} chips visible, {want} expected")
    if parsed.psum_correct is False:
        problems.append("psum returned a wrong sum")
    problems += parsed.errors
    kind = f" ({parsed.device_kind})" if parsed.device_kind else ""
    chips = Check(name="tpu.chips", status="fail" if problems else "pass",
                  measured=parsed.local_chips, expected=want, unit="chips",
                  source=ctx.ref.count_source,
                  detail="; ".join(problems) if problems else
                  f"{parsed.local_chips} chips{kind}, psum correct")
    if parsed.busbw_gbps is None:
        ici = Check(name="tpu.ici_bandwidth", status="fail",
                    detail=f"{TPU_FILE} has no psum bandwidth")
    else:
        size = f"{parsed.bytes_per_chip / 2**20:g} MiB" if parsed.bytes_per_chip else "?"
        ici = judge_metric(ctx, "tpu.ici_bandwidth", parsed.busbw_gbps,
                           f"psum busbw over {parsed.local_chips} chips at {size} per chip")
    return [chips, ici]
