"""Imports every command module so that each registers its commands on the `cli` group."""

import diffusion.cli.collect  # noqa: F401
import diffusion.cli.demo  # noqa: F401
import diffusion.cli.digest  # noqa: F401
import diffusion.cli.directory  # noqa: F401
import diffusion.cli.feeds  # noqa: F401
import diffusion.cli.preview  # noqa: F401
import diffusion.cli.send  # noqa: F401
import diffusion.cli.serve  # noqa: F401
import diffusion.cli.subscribers  # noqa: F401
from diffusion.cli import setup  # noqa: F401
