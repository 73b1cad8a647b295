"""Mutate the example plans and run `provision plan` on each mutant, isolated and time-bounded.

Used by tests/unit/test_plan_fuzz.py (a fixed seed, a few hundred mutants, in the default
suite) and runnable alone for a larger count:

    python -m tests.fuzz_plans --cases 3000 --seed 7

Every mutant runs the CLI's real entry point (``provision.cli.main``) in a forked child (the
parent has imported and warmed everything once, so a child costs one plan), with its own
stdout/stderr files and a wall-clock limit. A run is *bad* when it prints a traceback or an
internal error, exits with anything but 0, 2 or 3, exceeds the limit, prints invalid JSON for
``-o json`` (NaN and Infinity included), or exits 2 without naming a file:line or a field.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
LIMIT_SECONDS = 5.0

HOSTILE: list[Any] = [
    10**30, -(10**30), 10**400, 2**63, -1, 0, 1e308, -1e308, 1e-300, 0.5, 3.7, True, None,
    "", " ", "[/x]", "[bold]x", "[red]oops[/red]", "a\nansible_ssh_common_args: -o ProxyCommand=x",
    "../../etc/passwd", "/etc/passwd", "/dev/zero", "x" * 5000, "ünïcödé ✓", "\x00", "{{ 7*7 }}",
    "$(touch /tmp/pwned)", "-oProxyCommand=id", "us-*", "*", "H100", "nan", "inf", "1e999",
    [], {}, [1, 2, 3], {"a": {"b": {"c": 1}}}, ["[/x]"], {"[/x]": 1},
]
NUMBERS: list[Any] = [10**30, -(10**30), 10**400, 2**63, 2**31, -1, 0, 1e308, 1e-300, 1e15,
                      0.000001, 65536, 10**6]
TEXT_INSERTS = ["\t", "\x00", "{", "[", ":", "&a ", "*a", "!!omap ", "!!python/object ",
                "!!binary ", "---\n", "? ", "- ", "\"", "'", "%YAML 1.1\n", "\ufeff", "\\",
                ": .inf", ": .nan", ": -.inf", ": 1e308", ": 0x7fffffffffffffff"]
ALIAS_BOMB = "\n".join(
    ["bomb0: &b0 [x, x, x, x, x, x, x, x, x]"]
    + [f"bomb{i}: &b{i} [" + ", ".join([f"*b{i - 1}"] * 9) + "]" for i in range(1, 9)]) + "\n"


@dataclass
class Outcome:
    case: int
    source: str
    mutation: str
    args: list[str]
    rc: int | None
    seconds: float
    stdout: str
    stderr: str
    problems: list[str] = field(default_factory=list)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indexes) in a parsed YAML tree, the root excluded."""
    out: list[tuple] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


def _get_parent(tree: Any, path: tuple) -> Any:
    for part in path[:-1]:
        tree = tree[part]
    return tree


def mutate(rng: random.Random, text: str) -> tuple[str, str]:
    """(mutated text, a short description of the mutation)."""
    kind = rng.choice(["number", "number", "value", "value", "delete", "add", "subtree",
                       "text", "text", "truncate", "bomb", "dup-line"])
    data = yaml.safe_load(text)
    if kind in ("number", "value", "delete", "add", "subtree") and isinstance(data, dict):
        data = copy.deepcopy(data)
        paths = _paths(data)
        numeric = [p for p in paths if isinstance(_get_parent(data, p)[p[-1]], int | float)
                   and not isinstance(_get_parent(data, p)[p[-1]], bool)]
        path = rng.choice(numeric if kind == "number" and numeric else paths)
        parent = _get_parent(data, path)
        if kind == "number":
            value = rng.choice(NUMBERS)
            parent[path[-1]] = value
            what = f"{'.'.join(map(str, path))} = {str(value)[:40]}"
        elif kind == "value" or kind == "subtree":
            value = rng.choice(HOSTILE)
            parent[path[-1]] = copy.deepcopy(value)
            what = f"{'.'.join(map(str, path))} = {str(value)[:40]!r}"
        elif kind == "delete":
            del parent[path[-1]]
            what = f"delete {'.'.join(map(str, path))}"
        else:
            target = parent if isinstance(parent, dict) else data
            key = rng.choice(["[/x]", "[bold]k", "extra", "nmae", "k\nx: 1", "ä"])
            target[key] = rng.choice(HOSTILE)
            what = f"add key {key!r}"
        try:
            return yaml.safe_dump(data, sort_keys=False, allow_unicode=True), f"{kind}: {what}"
        except (yaml.YAMLError, ValueError):
            return text, f"{kind}: (not serialisable)"
    if kind == "truncate":
        cut = rng.randrange(len(text) + 1)
        return text[:cut], f"truncate at {cut}"
    if kind == "bomb":
        return text + ALIAS_BOMB, "alias bomb"
    if kind == "dup-line":
        lines = text.splitlines(keepends=True)
        i = rng.randrange(len(lines))
        return "".join([*lines[:i + 1], lines[i], *lines[i + 1:]]), f"duplicate line {i + 1}"
    pos = rng.randrange(len(text) + 1)
    insert = rng.choice(TEXT_INSERTS)
    return text[:pos] + insert + text[pos:], f"insert {insert!r} at {pos}"


def _child(args: list[str], out: int, err: int) -> None:
    """In the forked child: run the real CLI entry point with fds 1/2 on the given files."""
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdout = os.fdopen(1, "w", closefd=False)
    sys.stderr = os.fdopen(2, "w", closefd=False)
    from provision.cli import main

    sys.argv = ["provision", *args]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # anything escaping main() is the bug we seek
        import traceback

        traceback.print_exc()
        print(f"ESCAPED {type(exc).__name__}", file=sys.stderr)
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_one(args: list[str], workdir: Path) -> tuple[int | None, float, str, str]:
    """(exit code or None on timeout, seconds, stdout, stderr) of `provision ARGS`."""
    out_path, err_path = workdir / "stdout", workdir / "stderr"
    with out_path.open("w+b") as out, err_path.open("w+b") as err:
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                _child(args, out.fileno(), err.fileno())
            finally:
                os._exit(98)
        rc: int | None = None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() - started > LIMIT_SECONDS:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.005)
        seconds = time.monotonic() - started
    return (rc, seconds, out_path.read_text(errors="replace"),
            err_path.read_text(errors="replace"))


_NAMES_PLACE = re.compile(r"plan\.yaml(:\d+(:\d+)?)?: |[a-z_]+(\.[a-z_]+|\[\d+\])+: |"
                          r"(access|workload|resources|constraints|local|aws|gcp|baremetal|"
                          r"software|verify|job|lifecycle|catalog|name|target)\b")


def judge(o: Outcome) -> None:
    if o.rc is None:
        o.problems.append(f"hang: no answer in {LIMIT_SECONDS:g} s")
        return
    text = o.stdout + o.stderr
    if "Traceback" in text or "internal error" in text or "ESCAPED" in text:
        o.problems.append("traceback or internal error")
    if o.rc not in (0, 2, 3):
        o.problems.append(f"exit {o.rc}")
    if o.rc == 2 and not _NAMES_PLACE.search(o.stderr):
        o.problems.append("exit 2 without naming file:line or a field")
    if "-o" in o.args and o.rc in (0, 3):
        def no_constant(name: str) -> None:
            raise ValueError(f"{name} is not JSON")
        try:
            json.loads(o.stdout, parse_constant=no_constant)
        except ValueError as exc:
            o.problems.append(f"-o json printed invalid JSON ({exc})")


def warm_up() -> None:
    """Import and exercise everything once in the parent, so forked children start warm."""
    from provision.cli import app  # noqa: F401
    from provision.plan import load_plan
    from provision.planner import make_plan

    loaded = load_plan(REPO / "examples" / "qwen3-235b-serve.yaml")
    make_plan(loaded)
    import provision.cli.render_local
    import provision.cli.render_plan  # noqa: F401


def fuzz(cases: int, seed: int, workdir: Path) -> list[Outcome]:
    rng = random.Random(seed)
    warm_up()
    outcomes = []
    for case in range(cases):
        source = rng.choice(EXAMPLES)
        text, what = mutate(rng, source.read_text())
        plan = workdir / "plan.yaml"
        plan.write_text(text, encoding="utf-8", errors="surrogatepass")
        args = ["plan", str(plan)] + (["-o", "json"] if rng.random() < 0.5 else [])
        rc, seconds, out, err = run_one(args, workdir)
        o = Outcome(case, source.name, what, args, rc, seconds, out, err)
        judge(o)
        outcomes.append(o)
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    codes = Counter("hang" if o.rc is None else o.rc for o in outcomes)
    slowest = max(outcomes, key=lambda o: o.seconds)
    bad = [o for o in outcomes if o.problems]
    lines = [f"{len(outcomes)} mutants: exit codes {dict(sorted(codes.items(), key=str))}, "
             f"{len(bad)} bad, slowest {slowest.seconds:.2f} s ({slowest.source}: "
             f"{slowest.mutation})"]
    for o in bad[:15]:
        lines.append(f"  case {o.case} {o.source} [{o.mutation}] {o.args[2:]}: "
                     f"{'; '.join(o.problems)}\n    {o.stderr.strip()[-300:]}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("PROVISION_STATE_DIR", str(Path(tmp) / "state"))
        print(summary(fuzz(ns.cases, ns.seed, Path(tmp))))


if __name__ == "__main__":
    main()
