"""Which Google Cloud project a GCP cluster lives in.

pulumi-gcp reads its project from stack config and a few environment variables, not from
gcloud's active configuration, so a user whose project is set with `gcloud config set project`
would see every call fail with "project: required field is not set". provision resolves the
project itself, in this order, and passes it to the stack (config ``gcp:project`` and every
resource's ``project``):

1. the plan's ``gcp.project``;
2. ``$GOOGLE_CLOUD_PROJECT``, then ``$CLOUDSDK_CORE_PROJECT`` (gcloud's own override of the
   ``core/project`` property);
3. gcloud's active configuration: the directory ``$CLOUDSDK_CONFIG`` or ``~/.config/gcloud``,
   the configuration named by ``$CLOUDSDK_ACTIVE_CONFIG_NAME`` or the ``active_config`` file
   (``default`` when neither exists), its ``configurations/config_<name>`` file, section
   ``[core]``, key ``project`` (gcloud's "Managing gcloud CLI configurations" and
   "gcloud topic configurations");
4. the ``project_id`` of the service-account key ``$GOOGLE_APPLICATION_CREDENTIALS`` names.

With none of these, the plan cannot be brought up: exit 2, naming gcp.project and the ways to
set it.
"""

from __future__ import annotations

import configparser
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from provision.errors import InputError

ENV_VARS = ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")
HOW_TO_SET = (
    "set it in the plan (gcp: {project: my-project}), or export GOOGLE_CLOUD_PROJECT, or run "
    "`gcloud config set project my-project`, or point GOOGLE_APPLICATION_CREDENTIALS at a "
    "service-account key of the project")


@dataclass(frozen=True)
class Project:
    id: str
    source: str  # where it came from, for preview and status


def gcloud_dir(environ: Mapping[str, str]) -> Path:
    configured = environ.get("CLOUDSDK_CONFIG")
    if configured:
        return Path(configured).expanduser()
    home = Path(environ.get("HOME") or Path.home())
    return home / ".config" / "gcloud"


def gcloud_project(environ: Mapping[str, str]) -> Project | None:
    """The ``core/project`` property of gcloud's active configuration, if set."""
    base = gcloud_dir(environ)
    name = environ.get("CLOUDSDK_ACTIVE_CONFIG_NAME")
    if not name:
        try:
            name = (base / "active_config").read_text().strip() or "default"
        except OSError:
            name = "default"
    path = base / "configurations" / f"config_{name}"
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text())
    except (OSError, configparser.Error):
        return None
    value = parser.get("core", "project", fallback="").strip()
    return Project(value, f"gcloud configuration {name!r} ({path})") if value else None


def key_project(environ: Mapping[str, str]) -> Project | None:
    """The ``project_id`` of the service-account key GOOGLE_APPLICATION_CREDENTIALS names."""
    path = environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not path:
        return None
    try:
        value = json.loads(Path(path).expanduser().read_text()).get("project_id")
    except (OSError, ValueError, AttributeError):
        return None
    return Project(value, f"service-account key {path}") if value else None


def resolve_project(plan_project: str | None,
                    environ: Mapping[str, str] | None = None) -> Project:
    """The project, by the order in the module docstring; InputError (exit 2) when none."""
    env = os.environ if environ is None else environ
    if plan_project:
        return Project(plan_project, "plan gcp.project")
    for var in ENV_VARS:
        if env.get(var):
            return Project(env[var], f"${var}")
    found = gcloud_project(env) or key_project(env)
    if found is not None:
        return found
    raise InputError(f"gcp.project: no Google Cloud project is set; {HOW_TO_SET}")
