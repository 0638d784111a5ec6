"""Diffusion: targeted newsletters and feeds on the work of NGOs, Sectors and Field Offices."""

__version__ = "0.1.0"
