"""Rendering: a digest to MJML, HTML and plain text, once per segment, with placeholders."""

from diffusion.render.checks import check_templates
from diffusion.render.edition import COLOUR_PAIRS, PALETTE, render_digest, with_item_pages
from diffusion.render.fitting import GMAIL_CLIP_BYTES

__all__ = [
    "COLOUR_PAIRS",
    "GMAIL_CLIP_BYTES",
    "PALETTE",
    "check_templates",
    "render_digest",
    "with_item_pages",
]
