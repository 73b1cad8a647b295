"""Errors that end a command with a message and a documented exit code, never a traceback.

Exit codes (documented in the README and relied on by CI pipelines):
  0  success (a plan was found, a cluster converged, verify passed or warned)
  1  a run failed (converge or verify failed, a cloud call failed)
  2  unusable input (plan.yaml, catalog, command line)
  3  nothing fits the plan's constraints
  4  another run holds the cluster's lock
"""

from __future__ import annotations


class ProvisionError(Exception):
    """Base class: carries the exit code the CLI ends with."""

    exit_code = 1


class InputError(ProvisionError):
    """Bad input. The message names the file, line, field and what was expected."""

    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        head = super().__str__()
        if not self.problems:
            return head
        return head + "\n" + "\n".join(f"  {p}" for p in self.problems)


class NothingFits(ProvisionError):
    """No offering satisfies the plan. Carries the optimizer's result for the near-miss report."""

    exit_code = 3

    def __init__(self, message: str, result: object | None = None) -> None:
        super().__init__(message)
        self.result = result


class LockHeld(ProvisionError):
    """Another run holds the cluster's lock."""

    exit_code = 4
