"""Input an attacker (or an accident) controls, through the installed CLI: plan files that are
not files or never end, alias bombs, markup in plan text, a public-key path that points at a
secret, a catalog that is not a catalog. Each ends in exit 2 with a message naming the file or
field — fast, without a traceback, and without echoing what it should not."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLES

SECRET_LINE = "root:$6$canarysalt$canaryhashvalue0123456789:19000:0:99999:7:::"


def _check_exit_2(proc, *must: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    for text in must:
        assert text in proc.stderr, (text, proc.stderr)


def test_plan_path_that_is_not_a_regular_file(run_cli, tmp_path: Path) -> None:
    fifo = tmp_path / "plan.yaml"
    os.mkfifo(fifo)
    _check_exit_2(run_cli("plan", str(fifo), timeout=30), f"{fifo}: not a regular file")
    _check_exit_2(run_cli("plan", "/dev/zero", timeout=30), "/dev/zero: not a regular file")
    _check_exit_2(run_cli("plan", str(tmp_path), timeout=30), "a directory")


def test_plan_size_alias_bomb_recursion_and_infinities(run_cli, tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("name: big\n" + "#" * (1024 * 1024) + "\n")
    _check_exit_2(run_cli("plan", str(big), timeout=30), "a plan is at most 1,048,576 bytes")

    bomb = tmp_path / "bomb.yaml"  # 9^9 = 387 million values from ~550 bytes
    lines = ["name: bomb", "target: local", "a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 600
    _check_exit_2(run_cli("plan", str(bomb), timeout=30), "expands to more than 100,000 values")

    recursive = tmp_path / "rec.yaml"
    recursive.write_text("name: rec\ntarget: local\nlocal: &x {nodes: 1, more: *x}\n")
    proc = run_cli("plan", str(recursive), timeout=30)
    _check_exit_2(proc, "rec.yaml")

    for value in (".inf", "-.inf", ".nan"):
        plan = tmp_path / "inf.yaml"
        plan.write_text((EXAMPLES / "qwen3-235b-serve.yaml").read_text().replace(
            "context: 32768", f"context: {value}"))
        _check_exit_2(run_cli("plan", str(plan), "-o", "json", timeout=30),
                      "workload.context: expected a finite number")


def test_markup_in_plan_text_prints_as_written(run_cli, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: demo\ntarget: local\nlocal: {nodes: 1}\n\"[/x]\": 1\n"
                    "\"[bold]key\": 2\n")
    proc = run_cli("plan", str(plan))
    _check_exit_2(proc, "[/x]: unknown key", "[bold]key: unknown key")

    plan.write_text("name: demo\ntarget: local\nlocal: {nodes: \"[red]3[/red]\"}\n")
    _check_exit_2(run_cli("plan", str(plan)), "got '[red]3[/red]'")


def _with_public_key(tmp_path: Path, key: Path) -> Path:
    """examples/aws-spot.yaml with access.ssh_public_key set to ``key``."""
    doc = yaml.safe_load((EXAMPLES / "aws-spot.yaml").read_text())
    doc.setdefault("access", {})["ssh_public_key"] = str(key)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(doc))
    return plan


@pytest.mark.parametrize("output", ["json", "markdown", "table"])
def test_preview_never_reads_a_secret_as_the_public_key(run_cli, tmp_path: Path,
                                                        output: str) -> None:
    secret = tmp_path / "shadow"
    secret.write_text(SECRET_LINE + "\n")
    plan = _with_public_key(tmp_path, secret)
    proc = run_cli("preview", str(plan), "--offline", "-o", output,
                   "--state-dir", str(tmp_path / "state"), timeout=300)
    _check_exit_2(proc, "access.ssh_public_key", "not an OpenSSH public key")
    assert "canaryhash" not in proc.stdout + proc.stderr


def test_preview_shows_a_real_public_key(run_cli, tmp_path: Path) -> None:
    import subprocess

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    plan = _with_public_key(tmp_path, key.with_suffix(".pub"))
    proc = run_cli("preview", str(plan), "--offline", "-o", "json",
                   "--state-dir", str(tmp_path / "state"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    public = key.with_suffix(".pub").read_text().split()[1]
    assert public in proc.stdout


def test_a_catalog_that_is_not_one_is_not_quoted(run_cli, tmp_path: Path) -> None:
    secret = tmp_path / "secrets.csv"
    secret.write_text(SECRET_LINE + "\nsecond,line\n")
    proc = run_cli("plan", str(EXAMPLES / "qwen3-235b-serve.yaml"), "--catalog", str(secret))
    _check_exit_2(proc, "not a SkyPilot-format catalog")
    assert "canaryhash" not in proc.stdout + proc.stderr
    _check_exit_2(run_cli("plan", str(EXAMPLES / "qwen3-235b-serve.yaml"), "--catalog",
                          "/dev/zero", timeout=30), "/dev/zero: not a regular file")


def test_plan_json_is_strict_json(run_cli) -> None:
    proc = run_cli("plan", str(EXAMPLES / "qwen3-235b-serve.yaml"), "-o", "json")
    assert proc.returncode == 0

    def refuse(name: str) -> None:
        raise ValueError(name)

    json.loads(proc.stdout, parse_constant=refuse)
