"""The editors' and operators' commands; the only place that turns errors into exit codes."""

# The command modules register themselves on the group in base.py when they are imported;
# they import base, never this package, so that nothing here is imported back.
from diffusion.cli import commands  # noqa: F401  (registers the commands)
from diffusion.cli.base import cli, main

__all__ = ["cli", "main"]
