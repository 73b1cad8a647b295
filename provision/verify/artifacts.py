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


@dataclass(frozen=True, slots=True)
class Artifact:
    """One collected file with its markers. ``text`` is None when the file is absent."""

    name: str
    path: Path
    text: str | None
    rc: int | None
    timeout: str | None  # None: no timeout marker; "" or seconds when the tool hung
    stderr: str | None

    @property
    def present(self) -> bool:
        """Anything at all was collected for this file (output or a marker)."""
        return self.text is not None or self.timeout is not None or self.rc is not None

    def problem(self) -> str | None:
        """Why the output cannot be used, or None when it can be parsed."""
        if self.timeout is not None:
            secs = f" after {self.timeout} s" if self.timeout else ""
            return f"{self.name}: the tool hung and was killed{secs} (timeout marker)"
        if self.rc == 127:
            return f"{self.name}: the tool is not installed (exit 127){self._stderr_hint()}"
        if self.text is None:
            return f"{self.name} is missing: the collector did not fetch it"
        return None

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
        lines = [ln.strip() for ln in self.stderr.strip().splitlines() if ln.strip()]
        return "; stderr: " + " | ".join(lines[-3:])[:300]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return None


def read_artifact(directory: Path, name: str) -> Artifact:
    path = directory / name
    rc_text = _read(path.with_name(name + ".rc"))
    rc = None
    if rc_text is not None:
        try:
            rc = int(rc_text.strip())
        except ValueError:
            rc = None
    timeout = _read(path.with_name(name + ".timeout"))
    return Artifact(name=name, path=path, text=_read(path), rc=rc,
                    timeout=timeout.strip() if timeout is not None else None,
                    stderr=_read(path.with_name(name + ".stderr")))


@dataclass(frozen=True, slots=True)
class SkuFile:
    """A host's ``sku`` file: ``<sku-id> [gpus=N] [chips=N] [ib_ports=N]``."""

    sku: str
    gpus: int | None = None  # GPUs (or TPU chips) this node should have, if not the default
    ib_ports: int | None = None  # InfiniBand ports expected (0: none), if not the default


def parse_sku_file(text: str, where: str) -> SkuFile:
    """Parse a ``sku`` file; extra ``key=value`` tokens override the reference's defaults."""
    tokens = text.split()
    if not tokens:
        raise InputError(f"{where} is empty: write the SKU id, e.g. h100-sxm-80gb")
    values: dict[str, int] = {}
    for token in tokens[1:]:
        key, sep, value = token.partition("=")
        if not sep or key not in ("gpus", "chips", "ib_ports") or not value.isdigit():
            raise InputError(f"{where}: cannot read {token!r}",
                             ["expected `<sku> [gpus=N] [chips=N] [ib_ports=N]`"])
        values["gpus" if key == "chips" else key] = int(value)
    return SkuFile(sku=tokens[0].lower(), gpus=values.get("gpus"),
                   ib_ports=values.get("ib_ports"))


def host_directories(directory: Path) -> list[Path]:
    """Every subdirectory except ``_cluster`` and hidden or underscore-prefixed ones."""
    return sorted(p for p in directory.iterdir()
                  if p.is_dir() and not p.name.startswith(("_", ".")))
