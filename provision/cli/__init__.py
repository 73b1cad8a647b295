"""The `provision` command line: thin commands over the pipeline's functions.

Start-up stays light: each command imports what it needs when it runs, so `provision --help`
and `provision plan` never load pulumi, ansible-runner or boto3.
"""

from __future__ import annotations

import os
import sys

from provision.cli.app import app
from provision.errors import ProvisionError


def main() -> None:
    """Console entry point: run the app, turn known errors into messages and exit codes."""
    # provision uses no pydantic plugins; looking for them scans every installed package's
    # entry points (~60 ms of each start). A user who needs one can set the variable.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        app()
    except ProvisionError as exc:
        from rich.text import Text

        from provision.cli.console import err_console

        # Text, not markup: the message quotes user input ("[cloud]", plan keys)
        err_console().print(Text.assemble(("error:", "bold red"), f" {exc}"), soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        from provision.cli.console import err_console

        err_console().print("interrupted; state is saved, rerun the command to resume")
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, keep the traceback opt-in
        if os.environ.get("PROVISION_DEBUG"):
            raise
        from rich.text import Text

        from provision.cli.console import err_console

        err_console().print(Text.assemble(
            ("internal error:", "bold red"), f" {type(exc).__name__}: {exc}\n"
            "This is a bug in provision; rerun with PROVISION_DEBUG=1 for a traceback."))
        sys.exit(1)
