"""The collector's contract: which file holds which tool's output, and how failures are marked.

A run's artifacts directory holds one directory per host plus ``_cluster/`` for cluster-wide
results (directories starting with ``_`` or ``.`` are never hosts). In each, ``<file>`` is the
tool's stdout, and the collector may add, next to it:

- ``<file>.rc``      the tool's exit status as text (127: not installed);
- ``<file>.stderr``  the tool's stderr (quoted in the report when the output is unusable);
- ``<file>.timeout`` the tool hung and was killed; optional content: the timeout in seconds.

COMMANDS below lists, per file, the exact command the collector runs and the lowest verify
level that needs it. The package docstring (provision/verify/__init__.py) repeats this for the
collector role's authors.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from provision.errors import InputError

LEVELS: tuple[str, ...] = ("quick", "standard", "full")

QUERY_GPU_FIELDS = ("index,name,uuid,memory.total,driver_version,pcie.link.gen.current,"
                    "pcie.link.width.current,ecc.errors.uncorrected.volatile.total")
REMAP_FIELDS = ("gpu_bus_id,gpu_uuid,remapped_rows.correctable,remapped_rows.uncorrectable,"
                "remapped_rows.pending,remapped_rows.failure")
NVBANDWIDTH_TESTS = ("host_to_device_memcpy_ce", "device_to_host_memcpy_ce",
                     "device_to_device_bidirectional_memcpy_read_sm")


@dataclass(frozen=True, slots=True)
class Collected:
    """One artifact file: the command that produces it and the lowest level that needs it."""

    file: str
    command: str
    level: str
    kind: str  # gpu | tpu | cluster


COMMANDS: tuple[Collected, ...] = (
    Collected("nvidia-smi-query.csv",
              f"nvidia-smi --query-gpu={QUERY_GPU_FIELDS} --format=csv,noheader,nounits",
              "quick", "gpu"),
    Collected("nvidia-smi-topo.txt", "nvidia-smi topo -m", "quick", "gpu"),
    Collected("nvidia-smi-nvlink.txt", "nvidia-smi nvlink --status", "quick", "gpu"),
    Collected("remap.csv",
              f"nvidia-smi --query-remapped-rows={REMAP_FIELDS} --format=csv,noheader",
              "quick", "gpu"),
    Collected("xid.txt",
              "journalctl -k --since '-2h' --no-pager | grep -F 'NVRM: Xid' || true   "
              "(simulated nodes: nvidia-sim-dmesg | grep -F 'NVRM: Xid' || true)",
              "quick", "gpu"),
    Collected("dcgmi-diag.json", "dcgmi diag -r 1|2|3 -j   (r1 quick, r2 standard, r3 full)",
              "quick", "gpu"),
    Collected("nvbandwidth.txt", "nvbandwidth -t " + " ".join(NVBANDWIDTH_TESTS),
              "standard", "gpu"),
    Collected("nccl-all_reduce.txt", "all_reduce_perf -b 8G -e 8G -f 2 -g <GPUs per node>",
              "standard", "gpu"),
    Collected("ibstat.txt", "ibstat", "full", "gpu"),
    Collected("ib_write_bw.txt",
              "per InfiniBand HCA, the client side of: ib_write_bw -d <mlx5_N> --report_gbits "
              "-F -D 10 <server>   (outputs appended; the server runs the same without <server>)",
              "full", "gpu"),
    Collected("tpu-check.json", "python3 -m provision.verify.tpu_check --out tpu-check.json "
              "(or python3 tpu_check.py --out tpu-check.json with the file copied alone)",
              "quick", "tpu"),
    Collected("_cluster/nccl-all_reduce.txt",
              "mpirun --tag-output -np <nodes x GPUs> -N <GPUs per node> "
              "all_reduce_perf -b 8G -e 8G -f 2 -g 1",
              "full", "cluster"),
)

DCGM_LEVEL = {"quick": 1, "standard": 2, "full": 3}


def level_index(level: str) -> int:
    if level not in LEVELS:
        raise InputError(f"unknown verify level {level!r}: use one of {', '.join(LEVELS)}")
    return LEVELS.index(level)


def files_for_level(level: str, kind: str = "gpu") -> list[Collected]:
    """What the collector must fetch for ``level`` on a node of ``kind`` (gpu, tpu, cluster)."""
    top = level_index(level)
    return [c for c in COMMANDS if c.kind == kind and LEVELS.index(c.level) <= top]


# Tool output larger than this is not tool output (the largest collected file, a DCGM -r 3 JSON
# on 8 GPUs, is ~200 KB, and two hours of an XID storm stay well below it): the check fails
# naming the size instead of the analyzer reading it. Markers (.rc, .timeout) are a few bytes;
# the tail of .stderr is enough to quote.
MAX_ARTIFACT_BYTES = 16 << 20
# Likewise for lines: 8 GPUs' outputs run to hundreds of lines, a 1,000-rank NCCL log to a few
# thousand; a file past this is not what the collector saved, and is failed without parsing.
MAX_ARTIFACT_LINES = 200_000
MAX_MARKER_BYTES = 4 << 10
MAX_STDERR_BYTES = 64 << 10
# Exit statuses a tool documents as benign for the collected command: grep exits 1 when it
# selected no line, which is what a clean kernel log gives `... | grep -F 'NVRM: Xid'`.
BENIGN_EXIT: dict[str, dict[int, str]] = {"xid.txt": {1: "grep found no XID line"}}
# Node sizes a sku file may ask for: the largest single-host GPU boards carry 16 GPUs and TPU
# hosts 8 chips; 64 leaves room without letting a typo allocate per-GPU state for 10^20 GPUs.
MAX_DEVICES_PER_NODE = 64
MAX_IB_PORTS_PER_NODE = 64
MAX_SKU_FILE_BYTES = 4 << 10
_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}
_EXIT_STATUS = re.compile(r"-?[0-9]{1,12}")


def read_text_capped(path: Path, cap: int, *, tail: bool = False, max_lines: int | None = None
                     ) -> tuple[str | None, str | None]:
    """(text, problem) of a regular file, or (None, None) when it does not exist.

    Opens without blocking (a plain open of a FIFO would wait for a writer forever), refuses
    anything but a regular file (``/dev/zero``, a directory, a socket), refuses files above
    ``cap`` bytes (with ``tail``, keeps their last ``cap`` bytes instead) and text that is not
    UTF-8 or holds NUL bytes, naming the line. Never raises for what is on disk.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot be opened ({exc.strerror or exc})"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            return None, f"is {kind}, not a regular file"
        if info.st_size > cap and not tail:
            return None, (f"is {info.st_size:,} bytes, more than the {cap:,}-byte cap for tool "
                          "output")
        if tail and info.st_size > cap:
            os.lseek(fd, info.st_size - cap, os.SEEK_SET)
        data = os.read(fd, cap + 1)
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    finally:
        os.close(fd)
    if len(data) > cap and not tail:
        return None, f"grew past the {cap:,}-byte cap while it was read"
    if tail:
        return data.decode("utf-8", errors="replace"), None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        return None, f"is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})"
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        return None, f"holds NUL bytes (line {line}), which no tool prints"
    if max_lines is not None and (count := text.count("\n")) > max_lines:
        return None, f"has {count:,} lines, more than the {max_lines:,} any collected tool prints"
    return text, None


@dataclass(frozen=True, slots=True)
class Artifact:
    """One collected file with its markers. ``text`` is None when the file is absent or
    unreadable (``unreadable`` then says why)."""

    name: str
    path: Path
    text: str | None
    rc: int | None
    timeout: str | None  # None: no timeout marker; "" or seconds when the tool hung
    stderr: str | None
    unreadable: str | None = None  # why the output file cannot be used as text
    marker_problem: str | None = None  # an .rc marker that cannot be read

    @property
    def present(self) -> bool:
        """Anything at all was collected for this file (output or a marker)."""
        return (self.text is not None or self.timeout is not None or self.rc is not None
                or self.unreadable is not None or self.marker_problem is not None)

    def problem(self) -> str | None:
        """Why the output cannot be used, or None when it can be parsed."""
        if self.timeout is not None:
            secs = f" after {self.timeout} s" if self.timeout else ""
            return f"{self.name}: the tool hung and was killed{secs} (timeout marker)"
        if self.rc == 127:
            return f"{self.name}: the tool is not installed (exit 127){self._stderr_hint()}"
        if self.unreadable is not None:
            return f"{self.name}: unusable output: the file {self.unreadable}"
        if self.marker_problem is not None:
            return f"{self.name}: {self.marker_problem}"
        if self.text is None:
            return f"{self.name} is missing: the collector did not fetch it"
        return None

    def exit_problem(self) -> str | None:
        """The tool's non-zero exit status as a failure sentence (None: 0, absent or benign).

        A tool that crashed after printing its table (``echo 139 > F.rc``) must not pass on
        the strength of the table; statuses the tool documents as benign are let through.
        """
        if self.rc in (None, 0, 127) or self.timeout is not None:
            return None
        benign = BENIGN_EXIT.get(self.name, {}).get(self.rc)
        if benign and not (self.text or "").strip():
            return None
        signal = f" (killed by signal {self.rc - 128})" if 128 < self.rc < 160 else ""
        return (f"{self.name}: the tool exited with status {self.rc}{signal}, so its output "
                f"cannot be trusted{self._stderr_hint()}")

    def failure_hint(self) -> str:
        """Exit status and stderr excerpt, for details when output parsed to nothing."""
        parts = []
        if self.rc not in (None, 0):
            parts.append(f"exit {self.rc}")
        hint = self._stderr_hint()
        return (", ".join(parts) + hint) if parts else hint.lstrip("; ")

    def _stderr_hint(self) -> str:
        if not self.stderr or not self.stderr.strip():
            return ""
        lines = [ln.strip() for ln in self.stderr.strip().splitlines()[-20:] if ln.strip()]
        return "; stderr: " + " | ".join(lines[-3:])[:300]


def read_artifact(directory: Path, name: str) -> Artifact:
    path = directory / name
    text, unreadable = read_text_capped(path, MAX_ARTIFACT_BYTES, max_lines=MAX_ARTIFACT_LINES)
    rc_text, rc_problem = read_text_capped(path.with_name(name + ".rc"), MAX_MARKER_BYTES)
    rc = None
    if rc_problem is not None:
        rc_problem = f"the exit-status marker {name}.rc {rc_problem}"
    elif rc_text is not None:
        token = rc_text.strip()
        if _EXIT_STATUS.fullmatch(token):
            rc = int(token)
        else:
            rc_problem = (f"the exit-status marker {name}.rc holds {token[:20]!r}, not a "
                          "status, so the tool's outcome is unknown")
    timeout, timeout_problem = read_text_capped(path.with_name(name + ".timeout"),
                                                MAX_MARKER_BYTES)
    if timeout_problem is not None:
        timeout = ""  # a timeout marker is there even though its content cannot be read
    stderr, _ = read_text_capped(path.with_name(name + ".stderr"), MAX_STDERR_BYTES, tail=True)
    return Artifact(name=name, path=path, text=text, rc=rc,
                    timeout=timeout.strip()[:40] if timeout is not None else None,
                    stderr=stderr, unreadable=unreadable, marker_problem=rc_problem)


@dataclass(frozen=True, slots=True)
class SkuFile:
    """A host's ``sku`` file: ``<sku-id> [gpus=N] [chips=N] [ib_ports=N]``."""

    sku: str
    gpus: int | None = None  # GPUs (or TPU chips) this node should have, if not the default
    ib_ports: int | None = None  # InfiniBand ports expected (0: none), if not the default


_SKU_LIMITS = {"gpus": (1, MAX_DEVICES_PER_NODE), "chips": (1, MAX_DEVICES_PER_NODE),
               "ib_ports": (0, MAX_IB_PORTS_PER_NODE)}


def read_sku_file(path: Path) -> SkuFile | None:
    """The host's ``sku`` file, None when there is none; InputError naming it when unusable."""
    text, problem = read_text_capped(path, MAX_SKU_FILE_BYTES)
    if problem is not None:
        raise InputError(f"{path} {problem}",
                         ["write the SKU id as text, e.g. `h100-sxm-80gb gpus=8`"])
    return None if text is None else parse_sku_file(text, str(path))


def parse_sku_file(text: str, where: str) -> SkuFile:
    """Parse a ``sku`` file; extra ``key=value`` tokens override the reference's defaults."""
    tokens = text.split()
    if not tokens:
        raise InputError(f"{where} is empty: write the SKU id, e.g. h100-sxm-80gb")
    values: dict[str, int] = {}
    usage = "expected `<sku> [gpus=N] [chips=N] [ib_ports=N]`"
    for token in tokens[1:]:
        key, sep, value = token.partition("=")
        if not sep or key not in _SKU_LIMITS or not re.fullmatch(r"[0-9]{1,6}", value):
            raise InputError(f"{where}: cannot read {token[:60]!r}", [usage])
        low, high = _SKU_LIMITS[key]
        if not low <= int(value) <= high:
            raise InputError(f"{where}: {key}={value} is outside {low}-{high}",
                             [f"a node has at most {high} {key.replace('_', ' ')}", usage])
        field = "gpus" if key == "chips" else key
        if field in values:
            raise InputError(f"{where}: {key} is given twice", [usage])
        values[field] = int(value)
    return SkuFile(sku=tokens[0].lower(), gpus=values.get("gpus"),
                   ib_ports=values.get("ib_ports"))


def host_directories(directory: Path) -> list[Path]:
    """Every subdirectory except ``_cluster`` and hidden or underscore-prefixed ones."""
    return sorted(p for p in directory.iterdir()
                  if p.is_dir() and not p.name.startswith(("_", ".")))
