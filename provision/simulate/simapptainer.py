"""SIMULATED Apptainer (provision-sim): builds sandbox images and runs commands in them.

Debian 12 has no apptainer package and GitHub (its release .debs) is out of reach here, so
simulated nodes install this stand-in under the real package name. It really runs containers,
in a reduced form: ``apptainer build --sandbox DIR docker-archive:FILE`` unpacks the image's
layers into DIR (with the ``.singularity.d`` metadata directory a real sandbox has);
``apptainer exec [--nv] [-B src[:dst]] DIR CMD...`` runs CMD chrooted into DIR inside a new
mount namespace (util-linux ``unshare``), with /proc and /dev bound in, and with ``--nv`` the
simulated driver's userspace (simmounts.py: nvidia-smi and what it needs) bound in, as the
real ``--nv`` binds the host driver's files. SIF images and registries are refused with a
message saying so. Stdlib only (python3 -S).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath

TAG = "SIMULATED by provision-sim"
VERSION = "1.3.6"


def fatal(msg: str) -> int:
    print(f"FATAL:   {msg}", file=sys.stderr)
    return 255


def info(msg: str) -> None:
    print(f"INFO:    {msg}", file=sys.stderr)


def _safe(name: str) -> bool:
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts


def unpack_docker_archive(archive: Path, dest: Path) -> dict:
    """Extract a docker-archive (``docker save``/``podman save`` format) into ``dest``."""
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        entry = manifest[0]
        config = json.load(outer.extractfile(entry["Config"]))  # type: ignore[arg-type]
        for layer in entry["Layers"]:
            member = outer.extractfile(layer)
            if member is None:
                raise ValueError(f"layer {layer} missing from {archive}")
            with tarfile.open(fileobj=member) as inner:
                for m in inner.getmembers():
                    if not _safe(m.name):
                        continue
                    base = PurePosixPath(m.name)
                    if base.name.startswith(".wh."):  # whiteout: a deleted file
                        gone = dest / base.parent / base.name[4:]
                        if gone.is_file() or gone.is_symlink():
                            gone.unlink()
                        continue
                    # our own archives only: names are checked above; the tar filter is
                    # applied where this Python has it (3.11.4+)
                    extra = {"filter": "tar"} if hasattr(tarfile, "data_filter") else {}
                    inner.extract(m, dest, set_attrs=True, **extra)  # type: ignore[arg-type]
    return config


def build(argv: list[str]) -> int:
    force = any(a in ("--force", "-F") for a in argv)
    sandbox = any(a in ("--sandbox", "-s") for a in argv)
    args = [a for a in argv if not a.startswith("-")]
    if len(args) != 2:
        return fatal("build needs a target and a source: apptainer build --sandbox DIR SOURCE")
    dest, source = Path(args[0]), args[1]
    if not sandbox:
        return fatal(f"{TAG}: this apptainer builds sandbox directories only (--sandbox)")
    if not source.startswith("docker-archive:"):
        return fatal(f"{TAG}: no registry is reachable from a simulated node; build from a "
                     f"docker-archive:FILE (got {source})")
    archive = Path(source.split(":", 1)[1].removeprefix("//"))
    if not archive.is_file():
        return fatal(f"While performing build: unable to open {archive}: no such file")
    if dest.exists() and not force:
        return fatal(f"While performing build: build target '{dest}' already exists. Use "
                     "--force if you want to overwrite it")
    info("Starting build...")
    if dest.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(dest)], check=True)
    dest.mkdir(parents=True)
    info("Creating sandbox directory...")
    config = unpack_docker_archive(archive, dest)
    meta = dest / ".singularity.d"
    meta.mkdir(exist_ok=True)
    (meta / "labels.json").write_text(json.dumps(
        {**(config.get("config", {}).get("Labels") or {}),
         "org.label-schema.usage.apptainer.version": f"{VERSION} ({TAG})"}, indent=2),
        encoding="utf-8")
    env = config.get("config", {}).get("Env") or []
    (meta / "env").mkdir(exist_ok=True)
    (meta / "env" / "10-docker2singularity.sh").write_text(
        "".join(f"export {shlex.quote(e)}\n" for e in env), encoding="utf-8")
    info(f"Build complete: {dest}")
    return 0


def _binds(argv: list[str]) -> tuple[bool, list[tuple[str, str]], list[str]]:
    nv, binds, rest = False, [], []
    k = 0
    while k < len(argv):
        a = argv[k]
        if a == "--nv":
            nv = True
        elif a in ("-B", "--bind"):
            spec = argv[k + 1] if k + 1 < len(argv) else ""
            k += 1
            for item in spec.split(","):
                src, _, dst = item.partition(":")
                binds.append((src, dst.split(":")[0] or src))
        elif a in ("-c", "--contain", "-e", "--cleanenv", "--writable-tmpfs", "-C",
                   "--containall"):
            pass
        else:
            rest = argv[k:]
            break
        k += 1
    return nv, binds, rest


def exec_(argv: list[str]) -> int:
    nv, binds, rest = _binds(argv)
    if len(rest) < 2:
        return fatal("exec needs an image and a command: apptainer exec IMAGE CMD...")
    image, cmd = Path(rest[0]), rest[1:]
    if not image.exists():
        return fatal(f"could not open image {image}: failed to retrieve path for {image}: "
                     f"lstat {image}: no such file or directory")
    if not (image / ".singularity.d").is_dir():
        return fatal(f"{TAG}: {image} is not a sandbox image (build one with --sandbox)")
    if nv:
        here = str(Path(__file__).resolve().parent)
        if here not in sys.path:
            sys.path.insert(0, here)
        import simmounts

        gpu = simmounts.userspace_mounts()
        if not gpu:
            print("WARNING: Could not find any nv files on this host!", file=sys.stderr)
        binds = gpu + binds
    root = image.resolve()
    created: list[Path] = []  # mount points made for this run, removed after it
    lines = ["set -e", "mount --make-rprivate /"]
    for src, dst in [("/proc", "/proc"), ("/dev", "/dev"), *binds]:
        target = root / dst.lstrip("/")
        missing = [p for p in [target, *target.parents] if p != root and root in p.parents
                   and not p.exists() and not p.is_symlink()]
        for p in reversed(missing):
            if p == target and not os.path.isdir(src):
                p.touch()
            else:
                p.mkdir()
            created.append(p)
        lines.append(f"mount --rbind {shlex.quote(src)} {shlex.quote(str(target))}")
    env = " ".join(shlex.quote(f"{k}={v}") for k, v in os.environ.items()
                   if k.startswith("PROVISION_SIM_"))
    lines.append(f"env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
                 f"{env} chroot {shlex.quote(str(root))} "
                 + " ".join(shlex.quote(c) for c in cmd))
    try:
        proc = subprocess.run(["unshare", "--mount", "--fork", "sh", "-c", "\n".join(lines)],
                              check=False)
    finally:
        for p in reversed(created):
            if p.is_dir() and not p.is_symlink():
                p.rmdir()
            else:
                p.unlink(missing_ok=True)
    return proc.returncode


def main(argv: list[str]) -> int:
    """apptainer: version, build --sandbox, exec (a SIMULATED banner on stderr first)."""
    print(f"{TAG}: apptainer stand-in (chroot in a mount namespace)", file=sys.stderr)
    if not argv or argv[0] in ("--version", "-v"):
        print(f"apptainer version {VERSION}")
        return 0
    if argv[0] == "version":
        print(VERSION)
        return 0
    if argv[0] == "build":
        return build(argv[1:])
    if argv[0] == "exec":
        return exec_(argv[1:])
    return fatal(f"{TAG}: unsupported command {argv[0]!r} (version, build, exec)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
