"""Imports every command module so that each registers its commands on the `cli` group."""

from diffusion.cli import setup  # noqa: F401
