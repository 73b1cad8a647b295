"""Where the tests find the real Pulumi CLI and its Python dynamic-provider launcher."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def pulumi_path() -> str | None:
    """The directory holding `pulumi` and `pulumi-resource-pulumi-python`: PATH first, then
    the build cache of scripts/build-pulumi-cli.sh (under the real home: tests isolate
    XDG_CACHE_HOME). None when there is no CLI."""
    found = shutil.which("pulumi")
    if found and shutil.which("pulumi-resource-pulumi-python"):
        return str(Path(found).parent)
    home = Path(os.environ.get("HOME") or Path.home())
    for bin_dir in sorted((home / ".cache/provision/pulumi").glob("*/bin"), reverse=True):
        if (bin_dir / "pulumi").exists() and (bin_dir / "pulumi-resource-pulumi-python").exists():
            return str(bin_dir)
    return None
