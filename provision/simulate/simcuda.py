"""SIMULATED CUDA toolkit for provision's simulated GPU nodes: ``nvcc`` and what it "builds".

No GPU and no CUDA compiler exist on a simulated node, yet the cuda and nccl roles must run
their real code paths: write a CUDA source, compile it with ``$CUDA_HOME/bin/nvcc``, run the
binary and judge its output. This module is that nvcc. It checks what a real nvcc run checks
and would fail on (the sources and the headers they include exist, ``-gencode``/``-arch`` names
an architecture this CUDA release supports, ``-l`` libraries are found), writes object files
that record what was compiled, and links them into an executable that runs the SIMULATED
program the sources declare with a ``provision-sim-program: <name>`` comment:

- ``devicequery``: the CUDA samples' deviceQuery output (Detected N CUDA Capable device(s),
  name, compute capability, memory, ``Result = PASS``) for the node's SKU and faults;
- ``nccl-tests:<binary>``: nccl-tests' ``<binary>`` (all_reduce_perf, ...) from simgpu.

A program runs only as a real one would: the driver stand-in must be installed with its kernel
module (simgpu's driver checks), the driver must support the toolkit's CUDA version ("CUDA
driver version is insufficient for CUDA runtime version", error 35), and on NVSwitch systems
the fabric manager must have completed the fabric ("system not yet initialized", error 802).
Sources without the marker are refused: this nvcc simulates provision's own programs, nothing
else. Stdlib only (python3 -S), shipped in the cuda-toolkit-X-Y stand-in next to nvcc.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

TAG = "SIMULATED by provision-sim"
BANNER = f"{TAG}: nvcc stand-in; no CUDA compiler is present"
MARKER = re.compile(r"provision-sim-program:\s*([A-Za-z0-9_:.-]+)")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
# Headers whose absence a real build reports; others (system C++ headers) are not checked.
CHECKED_HEADERS = ("nccl.h", "cuda_runtime.h")
NVCC_BUILD = {"12.2": "12.2.140", "12.4": "12.4.131", "12.6": "12.6.85", "12.8": "12.8.93",
              "12.9": "12.9.86", "13.0": "13.0.48"}
# SM numbers every CUDA 12 release compiles for.
ARCHES_12 = {"50", "52", "53", "60", "61", "62", "70", "72", "75", "80", "86", "87", "89", "90"}


def supported_arches(cuda: str) -> set[str]:
    """SM numbers a CUDA release compiles for (sm_100 from 12.8; 13.0 drops pre-Turing)."""
    major, minor = (int(x) for x in cuda.split(".")[:2])
    arches = set(ARCHES_12)
    if (major, minor) >= (12, 8):
        arches |= {"100", "101", "120"}
    if major >= 13:
        arches = {a for a in arches if int(a) >= 75}
    return arches


class NvccError(Exception):
    """A compile/link error, printed the way nvcc (or the host linker) prints it."""


def toolkit(home: Path) -> dict[str, Any]:
    """The installed toolkit's version.json (written by the stand-in package)."""
    return json.loads((home / "version.json").read_text(encoding="utf-8"))


def _version_text(cuda: str) -> str:
    build = NVCC_BUILD.get(cuda, f"{cuda}.0")
    return ("nvcc: NVIDIA (R) Cuda compiler driver\n"
            "Copyright (c) 2005-2025 NVIDIA Corporation\n"
            f"Built on {TAG}\n"
            f"Cuda compilation tools, release {cuda}, V{build}\n"
            f"Build cuda_{cuda}.r{cuda}/compiler.0_0\n")


def parse_args(argv: list[str]) -> dict[str, Any]:
    """The nvcc options provision's builds use; unknown flags are accepted and ignored."""
    opts: dict[str, Any] = {"inputs": [], "includes": [], "libdirs": [], "libs": [],
                            "defines": [], "arches": [], "compile": False, "output": None}
    k = 0
    while k < len(argv):
        a = argv[k]
        nxt = argv[k + 1] if k + 1 < len(argv) else ""
        if a in ("-o", "--output-file"):
            opts["output"], k = nxt, k + 1
        elif a in ("-c", "--compile"):
            opts["compile"] = True
        elif a == "-lineinfo":
            pass
        elif a[:2] in ("-I", "-L", "-l", "-D"):
            value = a[2:] or nxt
            if not a[2:]:
                k += 1
            key = {"-I": "includes", "-L": "libdirs", "-l": "libs", "-D": "defines"}[a[:2]]
            opts[key].append(value)
        elif a.startswith(("-gencode", "--generate-code", "-arch", "--gpu-architecture")):
            spec = a.split("=", 1)[1] if "=" in a else nxt
            if "=" not in a:
                k += 1
            opts["arches"] += re.findall(r"(?:compute|sm)_([0-9]+)", spec)
        elif a.endswith((".cu", ".cpp", ".cc", ".c", ".o")) and not a.startswith("-"):
            opts["inputs"].append(a)
        elif a in ("-Xcompiler", "-Xlinker", "-ccbin", "--compiler-bindir", "-std", "-x"):
            k += 1
        k += 1
    return opts


def _find_header(name: str, source: Path, includes: list[str], home: Path) -> bool:
    dirs = [source.parent, *map(Path, includes), home / "include", Path("/usr/include"),
            Path("/usr/local/include")]
    return any((d / name).is_file() for d in dirs)


def _find_lib(name: str, libdirs: list[str], home: Path) -> bool:
    dirs = [*map(Path, libdirs), home / "lib64", Path("/usr/lib/x86_64-linux-gnu"),
            Path("/usr/lib"), Path("/lib/x86_64-linux-gnu")]
    return any(next(d.glob(f"lib{name}.so*"), None) is not None for d in dirs if d.is_dir())


def _compile(source: Path, opts: dict[str, Any], home: Path, cuda: str) -> dict[str, Any]:
    if not source.is_file():
        raise NvccError(f"nvcc fatal   : Could not open input file {source}")
    text = source.read_text(encoding="utf-8", errors="replace")
    for header in INCLUDE.findall(text):
        if header in CHECKED_HEADERS and not _find_header(header, source, opts["includes"],
                                                          home):
            raise NvccError(f"{source}: fatal error: {header}: No such file or directory\n"
                            "compilation terminated.")
    marker = MARKER.search(text)
    return {"provision_sim_object": True, "source": str(source),
            "program": marker.group(1) if marker else None, "cuda": cuda,
            "arches": sorted(set(opts["arches"])), "defines": opts["defines"]}


def _read_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise NvccError(f"nvcc fatal   : Could not open input file {path}") from None
    if not data.get("provision_sim_object"):
        raise NvccError(f"{path}: file format not recognized")
    return data


WRAPPER = """#!/usr/bin/env -S python3 -S
# SIMULATED binary (provision-sim): built by the nvcc stand-in of CUDA {cuda}
# from {sources}; it runs provision-sim's {program!r}.
import sys
sys.path.insert(0, {lib!r})
import simcuda
sys.exit(simcuda.run_program({meta!r}, sys.argv[1:]))
"""


def nvcc(argv: list[str], home: Path) -> int:
    """nvcc ARGS: --version, -c (compile) or link; returns the exit status."""
    cuda = ".".join(toolkit(home)["cuda"]["version"].split(".")[:2])
    if any(a in ("--version", "-V") for a in argv):
        sys.stdout.write(_version_text(cuda))
        print(BANNER, file=sys.stderr)
        return 0
    opts = parse_args(argv)
    try:
        bad = [a for a in opts["arches"] if a not in supported_arches(cuda)]
        if bad:
            raise NvccError(f"nvcc fatal   : Unsupported gpu architecture 'compute_{bad[0]}'")
        if not opts["inputs"]:
            raise NvccError("nvcc fatal   : No input files specified; use option --help "
                            "for more information")
        if opts["compile"]:
            if len(opts["inputs"]) != 1 or not opts["output"]:
                raise NvccError("nvcc fatal   : A single input file is required for a "
                                "non-link phase when an outputfile is specified")
            obj = _compile(Path(opts["inputs"][0]), opts, home, cuda)
            Path(opts["output"]).write_text(json.dumps(obj), encoding="utf-8")
            return 0
        objects = [_read_object(Path(i)) if i.endswith(".o")
                   else _compile(Path(i), opts, home, cuda) for i in opts["inputs"]]
        for lib in opts["libs"]:
            if not _find_lib(lib, opts["libdirs"], home):
                raise NvccError(f"/usr/bin/ld: cannot find -l{lib}: No such file or directory\n"
                                "collect2: error: ld returned 1 exit status")
        programs = sorted({o["program"] for o in objects if o["program"]})
        if len(programs) != 1:
            srcs = ", ".join(o["source"] for o in objects)
            raise NvccError(f"{TAG}: nvcc cannot link {srcs}: it simulates only programs "
                            "whose source declares 'provision-sim-program: <name>' "
                            f"(found {programs or 'none'})")
        out = Path(opts["output"] or "a.out")
        meta = {"program": programs[0], "cuda": cuda, "toolkit": str(home),
                "mpi": any("MPI_SUPPORT" in d for o in objects for d in o["defines"]),
                "arches": sorted({a for o in objects for a in o["arches"]})}
        out.write_text(WRAPPER.format(cuda=cuda, program=programs[0], meta=meta,
                                      sources=", ".join(Path(o["source"]).name
                                                        for o in objects),
                                      lib=str(Path(__file__).resolve().parent)),
                       encoding="utf-8")
        out.chmod(0o755)
        return 0
    except NvccError as exc:
        print(exc, file=sys.stderr)
        return 1


# ---- the programs ---------------------------------------------------------------------------
def _simgpu() -> Any:
    """simgpu from the installed driver stand-in (a CUDA program needs the driver)."""
    for lib in (os.environ.get("PROVISION_SIM_LIB"), "/usr/lib/provision-sim",
                str(Path(__file__).resolve().parent)):
        if lib and (Path(lib) / "simgpu.py").is_file():
            if lib not in sys.path:
                sys.path.insert(0, lib)
            import simgpu

            return simgpu
    return None


def _runtime_error(program: str, code: int, text: str) -> int:
    if program == "devicequery":
        print(f"./deviceQuery Starting...\n\n CUDA Device Query (Runtime API) version "
              f"(CUDART static linking)\n\ncudaGetDeviceCount returned {code}\n-> {text}\n"
              "Result = FAIL")
    else:
        print(f"{program.split(':')[-1]}: Test CUDA failure common.cu:1013 '{text}'")
    return 1


def run_program(meta: dict[str, Any], argv: list[str]) -> int:
    """Run a SIMULATED binary nvcc linked (see the module docstring)."""
    program = meta["program"]
    sim = _simgpu()
    if sim is None:
        return _runtime_error(program, 35, "CUDA driver version is insufficient for CUDA "
                              "runtime version")
    try:
        node = sim.load_node()
    except sim.SimError as exc:
        print(f"provision-sim ({program}): {exc}", file=sys.stderr)
        return 3
    problem = node.driver_problem()
    if problem is not None:
        return _runtime_error(program, 100 if problem[0] != 18 else 803,
                              "no CUDA-capable device is detected" if problem[0] != 18
                              else "system has unsupported display driver / cuda driver "
                              "combination")
    driver_cuda = tuple(int(x) for x in node.cuda.split(".")[:2])
    if tuple(int(x) for x in meta["cuda"].split(".")[:2]) > driver_cuda:
        return _runtime_error(program, 35, "CUDA driver version is insufficient for CUDA "
                              "runtime version")
    if node.fabric_state()[0] not in ("Completed", "N/A"):
        return _runtime_error(program, 802, "system not yet initialized")
    if program == "devicequery":
        return device_query(node, meta)
    if program.startswith("nccl-tests:"):
        tool = program.split(":", 1)[1]
        if tool not in sim.HANDLERS:
            print(f"{TAG}: no simulated nccl-tests binary {tool!r}", file=sys.stderr)
            return 1
        return sim.HANDLERS[tool](node, argv)
    print(f"{TAG}: unknown simulated program {program!r}", file=sys.stderr)
    return 1


def device_query(node: Any, meta: dict[str, Any]) -> int:
    """deviceQuery's output (the CUDA samples' format) for the node's visible GPUs."""
    cap = sys.modules[node.__class__.__module__].CAPABILITY.get(node.sku, "8.0")
    mib = int(node.ref["memory_mib"])
    print(f"./deviceQuery Starting...\n\n CUDA Device Query (Runtime API) version (CUDART "
          f"static linking)\n\n# {TAG}: no NVIDIA hardware is present\n")
    print(f"Detected {node.gpu_count} CUDA Capable device(s)")
    for i in range(node.gpu_count):
        print(f'\nDevice {i}: "{node.gpu_name()}"')
        print(f"  CUDA Driver Version / Runtime Version          {node.cuda} / {meta['cuda']}")
        print(f"  CUDA Capability Major/Minor version number:    {cap}")
        print(f"  Total amount of global memory:                 {mib} MBytes "
              f"({mib * 1048576} bytes)")
        print(f"  Device PCI Domain ID / Bus ID / location ID:   0 / {node.bus(i)} / 0")
    print(f"\ndeviceQuery, CUDA Driver = CUDART, CUDA Driver Version = {node.cuda}, CUDA "
          f"Runtime Version = {meta['cuda']}, NumDevs = {node.gpu_count}")
    print("Result = PASS")
    return 0


def main(argv: list[str]) -> int:
    """Entry point of the nvcc wrapper: ``$CUDA_HOME`` is the wrapper's parent directory."""
    home = Path(os.environ.get("PROVISION_SIM_CUDA_HOME")
                or Path(sys.argv[0]).resolve().parent.parent)
    return nvcc(argv, home)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
