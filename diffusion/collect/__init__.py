"""Collection: feeds, editorial entries and directories become normalised, sanitised rows."""

from diffusion.collect.run import CollectionSummary as CollectionSummary
from diffusion.collect.run import SourceResult as SourceResult
from diffusion.collect.run import run_collection as run_collection
