"""Fitting under Gmail's clipping size: the most entries whose HTML stays under it."""

import dataclasses
from collections.abc import Callable

from diffusion.contracts import Digest, ReferenceList, Section

# Gmail clips a message's HTML beyond this many bytes, hiding the rest (and the unsubscribe link).
GMAIL_CLIP_BYTES = 102_400


# When an edition must be cut to fit, summaries are shortened to this many characters too.
TRIMMED_SUMMARY_CHARS = 240


def units(digest: Digest) -> int:
    return digest.item_count + sum(len(ref.rows) for ref in digest.references)


def keep_first(digest: Digest, keep: int) -> Digest:
    """The digest with only its first `keep` entries and reference rows, in reading order."""
    sections: list[Section] = []
    for section in digest.sections:
        kept = section.entries[: max(keep, 0)]
        keep -= len(kept)
        sections.append(
            dataclasses.replace(
                section,
                entries=kept,
                more_count=section.more_count + len(section.entries) - len(kept),
            )
        )
    references: list[ReferenceList] = []
    for ref in digest.references:
        rows = ref.rows[: max(keep, 0)]
        keep -= len(rows)
        references.append(
            dataclasses.replace(
                ref, rows=rows, more_count=ref.more_count + len(ref.rows) - len(rows)
            )
        )
    return dataclasses.replace(digest, sections=tuple(sections), references=tuple(references))


def most_that_fit(size: Callable[[int], int], budget: int, high: int) -> int:
    """The most entries (at most `high`) whose MJML fits the budget, `size(keep)` being the
    MJML bytes with the first `keep`: a binary search."""
    low = 0
    if size(high) <= budget:
        return high
    while low < high - 1:
        middle = (low + high) // 2
        if size(middle) <= budget:
            low = middle
        else:
            high = middle
    return low
