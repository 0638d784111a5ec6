"""The web front: subscriber pages, feeds, the archive and the health check."""

from diffusion.web.app import create_app

__all__ = ["create_app"]
