"""plan.yaml `job:`: the workload's own command, kept running on the head node."""

from __future__ import annotations

from pydantic import Field

from provision.plan.schema_base import StrictModel


class JobSettings(StrictModel):
    """A command `provision up` starts on the head node once the cluster verifies, and that
    recovery restarts after replacing lost nodes. Keep its checkpoints in the shared
    directory so a restart resumes."""

    command: str = Field(min_length=1, description="Shell command, run with bash in workdir.")
    workdir: str = Field("/shared", description="Working directory on the head node.")
    log: str = Field("/shared/provision-job.log", description="Where its output is appended.")
    restart_on_recovery: bool = Field(
        True, description="Restart it after lost nodes were replaced and verified."
    )
