"""Collection: feeds, editorial entries and directories become normalised, sanitised rows."""

from diffusion.collect.run import CollectionSummary, SourceResult, run_collection

__all__ = ["CollectionSummary", "SourceResult", "run_collection"]
