"""Fuzz harness for the verify analyzer: mutate a healthy simulated 2-node 8 x H100 run a few
hundred ways (fixed seed) and judge every mutant with ``analyze(level="full")``.

Each mutant is judged in a forked child with a wall-clock limit and an address-space limit, so
a hang (a FIFO opened for reading, ``/dev/zero``) or a runaway allocation (a sku file asking for
10^20 GPUs) is counted instead of taking the test run down with it. Outcomes per mutant:
``pass | warn | fail`` (the report's status), ``input-error`` (InputError: the CLI's exit 2),
``internal`` (any other exception, a MemoryError, or a child killed by a signal) and ``hang``.

A mutant is ``must_fail`` when it corrupts a figure the verdict rests on or a required output:
NaN, ±inf, negative or impossible values in a judged number, a non-zero ``.rc`` marker, a GPU
listed twice or missing, DCGM results that are all skipped or carry unknown statuses, an
unreadable file. For those, anything but ``fail`` or ``input-error`` is a violation. The other
mutants (random line deletions, byte flips, truncations, non-UTF-8 bytes, ...) only have to be
judged without an internal error or a hang.

The harness touches only the public API (``analyze``, ``InputError``) and the simulator's
collector, so it runs against any revision of the code: ``PYTHONPATH=<checkout> python3 -m
tests.unit.verify_fuzz`` prints the counts (``--seed``, ``--count``, ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

SKU = "h100-sxm-80gb"
HOSTS = ("gpu-node-0", "gpu-node-1")
GPUS = 8
SEED = 13
COUNT = 400
HANG_SECONDS = 8.0  # per mutant; the healthy run is judged in ~20 ms
MEMORY_LIMIT = 1 << 30  # address space a child may add on top of what the parent had
PER_HOST = ("nvidia-smi-query.csv", "nvidia-smi-topo.txt", "nvidia-smi-nvlink.txt", "remap.csv",
            "xid.txt", "dcgmi-diag.json", "nvbandwidth.txt", "nccl-all_reduce.txt", "ibstat.txt",
            "ib_write_bw.txt")
CLUSTER_FILE = "_cluster/nccl-all_reduce.txt"
ACCEPTED_FOR_MUST_FAIL = frozenset({"fail", "input-error"})


# --- the healthy run --------------------------------------------------------------------------

def make_healthy_run(root: Path) -> Path:
    """Collect a 2-node 8 x H100 run from the simulated tools at level full."""
    from provision.simulate.collect import collect_cluster, collect_host

    run = root / "run"
    configs = {}
    for host in HOSTS:
        cfg = root / f"{host}.json"
        cfg.write_text(json.dumps({"sku": SKU, "hostname": host, "faults": []}))
        configs[host] = cfg
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda h: collect_host(run / h, configs[h], level="full"), HOSTS))
    collect_cluster(run, configs[HOSTS[0]], list(HOSTS), gpus_per_node=GPUS)
    return run


# --- mutations --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mutation:
    kind: str  # class of mutation, e.g. "number:nan", "rc", "identity:duplicate-gpu"
    target: str  # path inside the run that it changes
    must_fail: bool
    apply: Callable[[Path], None] = field(repr=False, compare=False)
    note: str = ""

    def label(self) -> str:
        return f"{self.kind} {self.target}" + (f" ({self.note})" if self.note else "")


def _tokens(line: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\S+", line)]


def _csv_cells(line: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for part in line.split(","):
        lead = len(part) - len(part.lstrip())
        spans.append((start + lead, start + len(part.rstrip())))
        start += len(part) + 1
    return spans


def judged_numbers(name: str, text: str) -> list[tuple[int, int]]:
    """Character spans of the numbers a healthy verdict rests on, per artifact file."""
    base = name.rsplit("/", 1)[-1]
    out: list[tuple[int, int]] = []
    offset = 0
    after_bw_header = False
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        spans: list[tuple[int, int]] = []
        if base == "nvidia-smi-query.csv":
            cells = _csv_cells(body)
            spans = [cells[i] for i in (0, 3, 5, 6, 7) if i < len(cells)]
        elif base == "remap.csv":
            cells = _csv_cells(body)
            spans = [cells[i] for i in (2, 3) if i < len(cells)]
        elif base == "nvidia-smi-nvlink.txt":
            spans = [m.span(1) for m in re.finditer(r"Link \d+: ([0-9.]+) GB/s", body)]
        elif base == "nvidia-smi-topo.txt" and re.match(r"GPU\d+\t", body):
            spans = [m.span(1) for m in re.finditer(r"\bNV(\d+)\b", body)]
        elif base == "nvbandwidth.txt":
            toks = _tokens(body)
            words = [body[a:b] for a, b in toks]
            if len(words) > 2 and words[0].isdigit() and any("." in w for w in words[1:]):
                spans = [s for s, w in zip(toks[1:], words[1:], strict=True) if "." in w]
        elif base == "nccl-all_reduce.txt":
            toks = _tokens(body)
            words = [body[a:b] for a, b in toks]
            if len(words) >= 13 and words[0].isdigit():
                spans = [toks[i] for i in (7, 8, 11, 12)]
            elif m := re.search(r"Out of bounds values\s*:\s*(\d+)", body):
                spans = [m.span(1)]
        elif base == "ibstat.txt" and (m := re.search(r"Rate:\s*(\S+)", body)):
            spans = [m.span(1)]
        elif base == "ib_write_bw.txt":
            if "BW average" in body:
                after_bw_header = True
            elif after_bw_header:
                toks = _tokens(body)
                if len(toks) >= 4:
                    spans = [toks[3]]
                after_bw_header = False
        out += [(offset + a, offset + b) for a, b in spans]
        offset += len(line)
    return out


def _number_values(token: str, bounded: bool = True) -> list[tuple[str, str]]:
    """(kind, replacement): values no healthy run can carry in a judged cell.

    "huge" (the value x 10^6) only where a physical bound is known (bandwidths, link speeds,
    memory, PCIe, GPU indices, NVLink counts, error counts); remapped-row counts have no
    published ceiling, so they get NaN, inf and negative values only.
    """
    try:
        value = float(token)
    except ValueError:
        value = 0.0
    huge = "1000000" if value == 0 else (
        str(int(value) * 1_000_000) if token.isdigit() else f"{value * 1e6:.2f}")
    negative = "-1" if value == 0 else f"-{token}"
    values = [("number:nan", "nan"), ("number:NaN", "NaN"), ("number:inf", "inf"),
              ("number:-inf", "-inf"), ("number:negative", negative)]
    return values + ([("number:huge", huge)] if bounded else [])


def _edit_file(rel: str, edit: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        path = run / rel
        path.write_bytes(edit(path.read_bytes()))
    return apply


def _replace_span(a: int, b: int, new: str) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        text = data.decode()
        return (text[:a] + new + text[b:]).encode()
    return edit


def _write(rel: str, data: bytes) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        (run / rel).write_bytes(data)
    return apply


def _lines_edit(fn: Callable[[list[str]], list[str]]) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        return "".join(fn(data.decode().splitlines(keepends=True))).encode()
    return edit


def make_special(path: Path, kind: str) -> None:
    """Put at ``path`` what no collector writes: a FIFO (a plain open waits forever), a link to
    /dev/zero (endless), a directory, a sparse 256 MiB file, or a million short lines."""
    if path.is_symlink() or path.is_file() or _is_fifo(path):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    elif kind == "oversize":
        with path.open("wb") as f:
            f.truncate(256 << 20)  # sparse: no disk used
    elif kind == "million-lines":
        path.write_bytes(b"0, 0, 0, 0\n" * 1_000_000)
    else:
        raise ValueError(kind)


def _replace_with(kind: str) -> Callable[[str], Callable[[Path], None]]:
    def make(rel: str) -> Callable[[Path], None]:
        return lambda run: make_special(run / rel, kind)
    return make


def _artifacts() -> list[str]:
    return [f"{h}/{f}" for h in HOSTS for f in PER_HOST] + [CLUSTER_FILE]


def number_mutations(run: Path) -> list[Mutation]:
    out = []
    for rel in _artifacts():
        text = (run / rel).read_text()
        for a, b in judged_numbers(rel, text):
            for kind, new in _number_values(text[a:b], bounded=not rel.endswith("remap.csv")):
                out.append(Mutation(kind, rel, True, _edit_file(rel, _replace_span(a, b, new)),
                                    f"{text[a:b]!r} -> {new!r}"))
    return out


def _gpu_line_indices(rel: str, lines: list[str]) -> list[int]:
    base = rel.rsplit("/", 1)[-1]
    if base in ("nvidia-smi-query.csv", "remap.csv"):
        return list(range(len(lines)))
    if base == "nvidia-smi-topo.txt":
        return [i for i, ln in enumerate(lines) if re.match(r"GPU\d+\t", ln)]
    if base == "nvidia-smi-nvlink.txt":
        return [i for i, ln in enumerate(lines) if ln.startswith("GPU ")]
    return []


def _nvlink_block_cut(k: int) -> Callable[[list[str]], list[str]]:
    """Drop GPU k's block (its header and its link lines) from nvlink --status."""
    def fn(lines: list[str]) -> list[str]:
        out, skip = [], False
        for ln in lines:
            if ln.startswith("GPU "):
                skip = ln.startswith(f"GPU {k}:")
            if not skip:
                out.append(ln)
        return out
    return fn


def _nvlink_truncate_after(k: int) -> Callable[[list[str]], list[str]]:
    def fn(lines: list[str]) -> list[str]:
        starts = [i for i, ln in enumerate(lines) if ln.startswith(f"GPU {k + 1}:")]
        return lines[:starts[0]] if starts else lines
    return fn


def _topo_first_gpus(n: int) -> Callable[[list[str]], list[str]]:
    """A topology matrix of GPU0..GPU{n-1} only (rows and columns), NICs kept."""
    def fn(lines: list[str]) -> list[str]:
        out = []
        header = next((ln for ln in lines if "\tGPU0\t" in ln), None)
        if header is None:
            return lines
        cols = header.rstrip("\n").split("\t")
        keep = [i for i, c in enumerate(cols) if not (c.startswith("GPU") and
                                                     c[3:].isdigit() and int(c[3:]) >= n)]
        for ln in lines:
            cells = ln.rstrip("\n").split("\t")
            if re.match(r"GPU(\d+)$", cells[0]) and int(cells[0][3:]) >= n:
                continue
            if "\t" in ln:
                ln = "\t".join(cells[i] for i in keep if i < len(cells)) + "\n"
            out.append(ln)
        return out
    return fn


def _nvb_rows(test: str, edit: Callable[[list[str], str], str | None]
              ) -> Callable[[list[str]], list[str]]:
    """Apply ``edit(words, line)`` to the matrix lines of ``test`` (None drops the line)."""
    def fn(lines: list[str]) -> list[str]:
        out, inside = [], False
        for ln in lines:
            if ln.startswith("Running "):
                inside = ln.strip() == f"Running {test}."
            words = ln.split()
            if inside and words and words[0].isdigit():
                new = edit(words, ln)
                if new is None:
                    continue
                ln = new
            out.append(ln)
        return out
    return fn


def _nvb_first_gpus(n: int, test: str) -> Callable[[list[str]], list[str]]:
    """nvbandwidth's matrix for ``test`` cut to columns (and source rows) 0..n-1."""
    def edit(words: list[str], ln: str) -> str | None:
        if all(w.isdigit() for w in words):  # the column header
            return "".join(f"{w:>10}" for w in words[:n]) + "\n"
        if int(words[0]) >= n and len(words) == GPUS + 1:
            return None
        return f"{words[0]:>2}" + "".join(f"{w:>10}" for w in words[1:n + 1]) + "\n"
    return _nvb_rows(test, edit)


def _nvb_drop_row(test: str, row: int) -> Callable[[list[str]], list[str]]:
    def edit(words: list[str], ln: str) -> str | None:
        data_row = len(words) > 2 and not all(w.isdigit() for w in words)
        return None if data_row and words[0] == str(row) else ln
    return _nvb_rows(test, edit)


def identity_mutations(run: Path) -> list[Mutation]:
    """A GPU listed twice or missing, a matrix cut short, UUIDs that disagree across files."""
    out = []
    for host in HOSTS:
        for f in ("nvidia-smi-query.csv", "remap.csv", "nvidia-smi-topo.txt",
                  "nvidia-smi-nvlink.txt"):
            rel = f"{host}/{f}"
            lines = (run / rel).read_text().splitlines(keepends=True)
            rows = _gpu_line_indices(rel, lines)
            if len(rows) < GPUS:
                continue
            three, seven = rows[3], rows[7]

            def dup(ls: list[str], a: int = three, b: int = seven) -> list[str]:
                ls = list(ls)
                ls[b] = ls[a]
                return ls

            def drop(ls: list[str], b: int = seven) -> list[str]:
                return ls[:b] + ls[b + 1:]

            if f == "nvidia-smi-nvlink.txt":
                out += [Mutation("identity:gpu-missing", rel, True,
                                 _edit_file(rel, _lines_edit(_nvlink_block_cut(5))), "GPU 5"),
                        Mutation("identity:cut-after-gpu3", rel, True,
                                 _edit_file(rel, _lines_edit(_nvlink_truncate_after(3)))),
                        Mutation("identity:duplicate-gpu", rel, True,
                                 _edit_file(rel, _lines_edit(dup)), "GPU 7 header -> GPU 3")]
                continue
            out += [Mutation("identity:duplicate-gpu", rel, True,
                             _edit_file(rel, _lines_edit(dup)), "GPU 3 twice, GPU 7 missing"),
                    Mutation("identity:gpu-missing", rel, True,
                             _edit_file(rel, _lines_edit(drop)), "GPU 7 row removed")]
            if f == "nvidia-smi-topo.txt":
                out.append(Mutation("identity:matrix-4-gpus", rel, True,
                                    _edit_file(rel, _lines_edit(_topo_first_gpus(4)))))
        rel = f"{host}/nvbandwidth.txt"
        for test in ("host_to_device_memcpy_ce", "device_to_device_bidirectional_memcpy_read_sm"):
            out.append(Mutation("identity:matrix-4-gpus", rel, True,
                                _edit_file(rel, _lines_edit(_nvb_first_gpus(4, test))), test))
        out.append(Mutation("identity:gpu-missing", rel, True, _edit_file(
            rel, _lines_edit(_nvb_drop_row("device_to_device_bidirectional_memcpy_read_sm", 6))),
            "d2d source row 6"))
        query = (run / f"{host}/nvidia-smi-query.csv").read_text()
        uuid = re.findall(r"GPU-[0-9a-f-]{36}", query)[2]
        other = "GPU-00000000-1111-2222-3333-444444444444"
        for f in ("nvidia-smi-nvlink.txt", "remap.csv"):
            rel = f"{host}/{f}"
            out.append(Mutation("identity:uuid-mismatch", rel, True, _edit_file(
                rel, lambda d, u=uuid, o=other: d.replace(u.encode(), o.encode())), "GPU 2"))
    return out


def _dcgm_statuses(new: Callable[[int, str], str]) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        counter = iter(range(1 << 30))
        return re.sub(rb'"status": "(\w+)"',
                      lambda m: f'"status": "{new(next(counter), m[1].decode())}"'.encode(),
                      data)
    return edit


def _dcgm_doc(edit: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    def fn(data: bytes) -> bytes:
        doc = json.loads(data)
        edit(doc)
        return json.dumps(doc, indent=3).encode()
    return fn


def _dcgm_root(doc: dict) -> dict:
    return doc.get("DCGM Diagnostic") or doc.get("DCGM GPU Diagnostic") or {}


def _dcgm_no_tests(doc: dict) -> None:
    for cat in _dcgm_root(doc).get("test_categories", []):
        cat["tests"] = []


def _dcgm_entity(from_id: int, to_id: int) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        for cat in _dcgm_root(doc).get("test_categories", []):
            for test in cat.get("tests") or []:
                for r in test.get("results") or []:
                    if r.get("entity_id") == from_id:
                        r["entity_id"] = to_id
    return edit


def dcgm_mutations() -> list[Mutation]:
    out = []
    for host in HOSTS:
        rel = f"{host}/dcgmi-diag.json"
        out += [
            Mutation("dcgm:all-skip", rel, True,
                     _edit_file(rel, _dcgm_statuses(lambda i, s: "Skip"))),
            Mutation("dcgm:all-not-run", rel, True,
                     _edit_file(rel, _dcgm_statuses(lambda i, s: "Not Run"))),
            Mutation("dcgm:unknown-status", rel, True, _edit_file(
                rel, _dcgm_statuses(lambda i, s: "Error" if i == 5 else s)), "Error"),
            Mutation("dcgm:unknown-status", rel, True, _edit_file(
                rel, _dcgm_statuses(lambda i, s: "Fail (XID 79)" if i == 9 else s)),
                "Fail (XID 79)"),
            Mutation("dcgm:zero-tests", rel, True, _edit_file(rel, _dcgm_doc(_dcgm_no_tests))),
            Mutation("dcgm:gpu-duplicate", rel, True,
                     _edit_file(rel, _dcgm_doc(_dcgm_entity(7, 3))), "GPU 7 results -> GPU 3"),
            Mutation("dcgm:status-type", rel, False, _edit_file(
                rel, lambda d: d.replace(b'"status": "Pass"', b'"status": [1, {"x": null}]', 1))),
            Mutation("dcgm:not-an-object", rel, True, _write(rel, b'["DCGM Diagnostic", 1]\n')),
        ]
    return out


def marker_mutations() -> list[Mutation]:
    out = []
    for rel in _artifacts():
        out.append(Mutation("rc:139", rel, True, _write(rel + ".rc", b"139\n"), "crash after "
                            "the output"))
    for rel in (f"{HOSTS[0]}/nccl-all_reduce.txt", f"{HOSTS[1]}/nvidia-smi-query.csv"):
        for bad in (b"abc\n", b"1e309\n", b"99999999999999999999999\n", b"\xff\xfe\n"):
            out.append(Mutation("rc:garbage", rel, False, _write(rel + ".rc", bad),
                                repr(bad)))
        out.append(Mutation("stderr:fifo", rel, False, _special_marker(rel + ".stderr", "fifo")))
        out.append(Mutation("stderr:dev-zero", rel, False,
                            _special_marker(rel + ".stderr", "dev-zero")))
        out.append(Mutation("rc:fifo", rel, False, _special_marker(rel + ".rc", "fifo")))
        out.append(Mutation("timeout:dev-zero", rel, True,
                            _special_marker(rel + ".timeout", "dev-zero")))
    return out


def _special_marker(rel: str, kind: str) -> Callable[[Path], None]:
    return lambda run: make_special(run / rel, kind)


def special_file_mutations() -> list[Mutation]:
    out = []
    host = HOSTS[0]
    for f in ("nvidia-smi-query.csv", "nvbandwidth.txt", "dcgmi-diag.json", "ib_write_bw.txt"):
        rel = f"{host}/{f}"
        for kind in ("fifo", "dev-zero", "directory", "oversize"):
            out.append(Mutation(f"file:{kind}", rel, True, _replace_with(kind)(rel)))
    for rel in (f"{HOSTS[1]}/nvidia-smi-query.csv", f"{HOSTS[1]}/xid.txt", CLUSTER_FILE):
        out.append(Mutation("file:million-lines", rel, rel.endswith(".csv"),
                            _replace_with("million-lines")(rel)))
    for rel in (f"{HOSTS[1]}/nvidia-smi-topo.txt", f"{HOSTS[1]}/nccl-all_reduce.txt",
                f"{HOSTS[1]}/dcgmi-diag.json", CLUSTER_FILE):
        out.append(Mutation("file:empty", rel, True, _write(rel, b"")))
    rel = f"{HOSTS[1]}/nccl-all_reduce.txt"
    out.append(Mutation("file:long-line", rel, False, _write(
        rel, b"# " + b"failed NCCL " * 400_000 + b"\n")))
    rel = f"{HOSTS[1]}/dcgmi-diag.json"
    out.append(Mutation("file:deep-json", rel, True, _write(
        rel, b'{"DCGM Diagnostic": ' + b"[" * 200_000 + b"]" * 200_000 + b"}\n")))
    sku = f"{HOSTS[1]}/sku"
    for text, must in ((f"{SKU} gpus=100000000000000000000\n", True),
                       (f"{SKU} ib_ports=100000000000000000000\n", True),
                       (f"{SKU} gpus=0\n", True), (f"{SKU} gpus=4\n", True),
                       (f"{SKU} gpus=-8\n", True), ("\xff\xfe h100\n", True),
                       (f"{SKU} gpus=8 gpus=8 ib_ports=8\n", False)):
        out.append(Mutation("sku", sku, must, _write(sku, text.encode("utf-8", "surrogateescape")
                                                     if "\xff" not in text else
                                                     b"\xff\xfe h100\n"), text.strip()))
    out.append(Mutation("sku:fifo", sku, True, _replace_with("fifo")(sku)))
    out.append(Mutation("sku:dev-zero", sku, True, _replace_with("dev-zero")(sku)))
    rel = f"{host}/ib_write_bw.txt"
    out.append(Mutation("ib_write_bw:float-iterations", rel, False, _edit_file(
        rel, lambda d: re.sub(rb"(\n\s*65536\s+)(\d+)", rb"\g<1>\g<2>.0", d))))
    rel = f"{host}/ibstat.txt"
    out.append(Mutation("ibstat:no-rate", rel, True, _edit_file(
        rel, lambda d: d.replace(b"\t\tRate: 400\n", b"", 1))))
    for f in ("nccl-all_reduce.txt", "nvidia-smi-query.csv", "remap.csv"):
        rel = f"{host}/{f}"
        for word in ("inf", "nan", "1e400"):
            out.append(Mutation("number:in-integer-column", rel, True, _edit_file(
                rel, _int_columns(f, word)), word))
    return out


def _int_columns(name: str, word: str) -> Callable[[bytes], bytes]:
    """Every integer column of the first data row (ECC, PCIe, remap counts, #wrong) -> word."""
    def edit(data: bytes) -> bytes:
        text = data.decode()
        lines = text.splitlines(keepends=True)
        for i, ln in enumerate(lines):
            if name == "nccl-all_reduce.txt":
                words = ln.split()
                if len(words) >= 13 and words[0].isdigit():
                    words[8] = words[12] = word
                    lines[i] = "  " + "  ".join(words) + "\n"
                    break
            elif ln.strip():
                cells = ln.rstrip("\n").split(", ")
                cols = (3, 5, 6, 7) if name == "nvidia-smi-query.csv" else (2, 3)
                for c in cols:
                    cells[c] = word
                lines[i] = ", ".join(cells) + "\n"
                break
        return "".join(lines).encode()
    return edit


def random_mutations(run: Path, rng: random.Random, n: int) -> list[Mutation]:
    """Line deletions, duplications and swaps, truncations, byte flips, non-UTF-8 bytes."""
    out = []
    files = _artifacts()
    for _ in range(n):
        rel = rng.choice(files)
        data = (run / rel).read_bytes()
        kind = rng.choice(["delete-line", "duplicate-line", "swap-lines", "truncate",
                           "flip-byte", "non-utf8", "insert-line"])
        lines = data.decode().splitlines(keepends=True) or [""]
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        pos = rng.randrange(len(data) + 1)
        byte = rng.randrange(256)
        if kind == "delete-line":
            edit = _lines_edit(lambda ls, i=i: ls[:i] + ls[i + 1:])
        elif kind == "duplicate-line":
            edit = _lines_edit(lambda ls, i=i: ls[:i + 1] + ls[i:])
        elif kind == "swap-lines":
            def edit(d: bytes, i: int = i, j: int = j) -> bytes:
                ls = d.decode().splitlines(keepends=True) or [""]
                ls[i], ls[j] = ls[j], ls[i]
                return "".join(ls).encode()
        elif kind == "truncate":
            def edit(d: bytes, pos: int = pos) -> bytes:
                return d[:pos]
        elif kind == "flip-byte":
            def edit(d: bytes, pos: int = pos, byte: int = byte) -> bytes:
                return d[:pos] + bytes([byte]) + d[pos + 1:]
        elif kind == "non-utf8":
            def edit(d: bytes, pos: int = pos) -> bytes:
                return d[:pos] + b"\xff\xfe\xc3\x28\x80" + d[pos:]
        else:
            garbage = rng.choice(["GPU 3: NVIDIA H100 80GB HBM3", "  1 2 3 nan inf",
                                  "# Avg bus bandwidth : inf", "Link 0: inf GB/s",
                                  "Running device_to_device_memcpy_read_ce.",
                                  "CA 'mlx5_9'", "\tPort 1:", "0, x, y, z"])
            edit = _lines_edit(lambda ls, i=i, g=garbage: [*ls[:i], g + "\n", *ls[i:]])
        out.append(Mutation(f"random:{kind}", rel, False, _edit_file(rel, edit),
                            f"line {i}" if "line" in kind else f"byte {pos}"))
    return out


def all_mutations(run: Path, seed: int = SEED, count: int = COUNT) -> list[Mutation]:
    """Every fixed mutation class, then numbers and random edits sampled to ``count``."""
    rng = random.Random(seed)
    fixed = (identity_mutations(run) + dcgm_mutations() + marker_mutations()
             + special_file_mutations())
    numbers = number_mutations(run)
    room = max(count - len(fixed), 0)
    n_numbers = min(len(numbers), room * 2 // 3)
    sampled = rng.sample(numbers, n_numbers)
    return fixed + sampled + random_mutations(run, rng, room - n_numbers)


# --- running ----------------------------------------------------------------------------------

@dataclass
class Outcome:
    mutation: Mutation
    result: str  # pass | warn | fail | input-error | internal | hang
    detail: str
    seconds: float

    @property
    def violation(self) -> bool:
        if self.result in ("internal", "hang"):
            return True
        return self.mutation.must_fail and self.result not in ACCEPTED_FOR_MUST_FAIL


def _child(run: Path, write_fd: int) -> None:
    """In the forked child: judge the run, report one JSON line, never return."""
    code = 0
    try:
        soft = resource.getrusage(resource.RUSAGE_SELF)  # noqa: F841 - touch before the limit
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[0])
        limit = pages * os.sysconf("SC_PAGE_SIZE") + MEMORY_LIMIT
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        from provision.errors import InputError
        from provision.verify import analyze
        try:
            report = analyze(run, level="full")
            msg = {"result": report.status,
                   "detail": "; ".join(f"{w}: {c.name}: {c.detail}"[:200]
                                       for w, c in report.problems()[:4])}
        except InputError as exc:
            msg = {"result": "input-error", "detail": str(exc)[:400]}
        except BaseException as exc:
            msg = {"result": "internal", "detail": f"{type(exc).__name__}: {exc}"[:400]}
        os.write(write_fd, json.dumps(msg).encode() + b"\n")
    except BaseException:
        code = 3
    finally:
        os._exit(code)


def judge(run: Path) -> tuple[str, str]:
    """(result, detail) of analyze() on ``run`` in a forked, limited child."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(run, write_fd)
    os.close(write_fd)
    deadline = time.monotonic() + HANG_SECONDS
    chunks = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "hang", f"no verdict after {HANG_SECONDS:g} s"
            ready, _, _ = select.select([read_fd], [], [], left)
            if ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    if not data:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        return "internal", f"child died ({'signal ' + str(sig) if sig else 'no report'})"
    msg = json.loads(data)
    return msg["result"], msg["detail"]


def _restore(run: Path, rel: str, snapshot: dict[str, bytes]) -> None:
    for suffix in ("", ".rc", ".stderr", ".timeout"):
        path = run / (rel + suffix)
        if path.is_symlink() or path.is_file() or _is_fifo(path):
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        if rel + suffix in snapshot:
            path.write_bytes(snapshot[rel + suffix])


def _is_fifo(path: Path) -> bool:
    try:
        return path.is_fifo()
    except OSError:
        return False


def run_fuzz(run: Path, mutations: list[Mutation]) -> list[Outcome]:
    snapshot = {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    outcomes = []
    for m in mutations:
        start = time.monotonic()
        try:
            m.apply(run)
        except (UnicodeDecodeError, ValueError, IndexError) as exc:  # a generator bug
            outcomes.append(Outcome(m, "skipped", f"could not apply: {exc}", 0.0))
            _restore(run, m.target, snapshot)
            continue
        result, detail = judge(run)
        outcomes.append(Outcome(m, result, detail, time.monotonic() - start))
        _restore(run, m.target, snapshot)
    return outcomes


def summarize(outcomes: list[Outcome]) -> dict:
    results = Counter(o.result for o in outcomes)
    must = [o for o in outcomes if o.mutation.must_fail]
    return {
        "mutations": len(outcomes),
        "must_fail": len(must),
        "results": dict(sorted(results.items())),
        "internal_errors": results.get("internal", 0),
        "hangs": results.get("hang", 0),
        "must_fail_judged_pass": sum(1 for o in must if o.result == "pass"),
        "must_fail_judged_warn": sum(1 for o in must if o.result == "warn"),
        "violations": sum(1 for o in outcomes if o.violation),
        "slowest_seconds": round(max((o.seconds for o in outcomes), default=0.0), 2),
        "by_kind": {k: dict(v) for k, v in sorted(_by_kind(outcomes).items())},
    }


def _by_kind(outcomes: list[Outcome]) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for o in outcomes:
        out.setdefault(o.mutation.kind.split(":")[0], Counter())[o.result] += 1
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--count", type=int, default=COUNT)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--show", type=int, default=40, help="violations to list")
    args = parser.parse_args(argv)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="verify-fuzz-") as tmp:
        run = make_healthy_run(Path(tmp))
        mutations = all_mutations(run, args.seed, args.count)
        outcomes = run_fuzz(run, mutations)
    summary = summarize(outcomes)
    summary["seconds"] = round(time.monotonic() - start, 1)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
        bad = [o for o in outcomes if o.violation]
        for o in bad[:args.show]:
            print(f"  VIOLATION {o.result:11} {o.mutation.label()}: {o.detail[:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
