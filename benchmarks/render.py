"""Benchmark: render once per segment, personalise every recipient's message.

Generates people in memory over a realistic spread of segments (audiences x keys x
languages x cadences x narrowings), some of them holding two or three subscriptions (a segment
is then the set of their subscriptions), renders one edition per segment (counting the calls to
mjml2html), then builds every recipient's complete message with delivery's MessageTemplate.

    .venv/bin/python benchmarks/render.py [--subscribers 100000] [--seed 7] [--several 0.2]

`--several 0` is the model of one subscription per person, for comparison.
"""

import argparse
import random
import resource
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from diffusion import render
from diffusion.config import load_settings
from diffusion.contracts import (
    Digest,
    DigestEntry,
    Period,
    Recipient,
    ReferenceList,
    Section,
    Segment,
)
from diffusion.deliver.message import MessageTemplate
from diffusion.models import CONTENT_KINDS, SECTORS, Edition
from diffusion.render import checks

NOW = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
ZONE = ZoneInfo("Europe/Paris")
THEMES = ("literacy", "open science", "youth", "heritage", "media freedom", "climate")
REGIONS = ("Africa", "Arab States", "Asia and the Pacific", "Europe", "Latin America")


def _spread() -> list[tuple[str, list[str], float]]:
    """(audience, keys, share of subscribers): many NGOs and countries, few Sectors."""
    countries = [f"{chr(65 + a)}{chr(65 + b)}" for a in range(26) for b in range(26)][:193]
    return [
        ("ngo", [f"ngo-{n:03d}" for n in range(380)], 0.40),
        ("sector", list(SECTORS), 0.08),
        ("field_office", [f"office-{n:02d}" for n in range(53)], 0.07),
        ("member_state", countries, 0.12),
        ("national_commission", countries, 0.10),
        ("liaison_committee", [""], 0.03),
        ("public", [""], 0.20),
    ]


def _subscription(
    rng: random.Random, spread: list[tuple[str, list[str], float]], language: str, cadence: str
) -> Segment:
    audience, keys, _ = rng.choices(spread, [share for _, _, share in spread])[0]
    key = rng.choice(keys)
    sectors: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    # Most people keep the defaults; a few narrow by Sector, theme or region.
    if audience in ("ngo", "public", "liaison_committee") and rng.random() < 0.12:
        sectors = (rng.choice(list(SECTORS)),)
    if audience == "public" and rng.random() < 0.05:
        themes = (rng.choice(THEMES),)
    if audience == "liaison_committee" and rng.random() < 0.1:
        regions = (rng.choice(REGIONS),)
    return Segment(audience, key, language, cadence, sectors, themes, regions)


def subscribers(count: int, seed: int, several: float = 0.2) -> list[tuple[Segment, Recipient]]:
    """(segment, reader) per person; a share `several` hold two or three subscriptions."""
    rng = random.Random(seed)
    more = random.Random(seed + 1)  # the extra subscriptions do not change the first ones
    spread = _spread()
    out: list[tuple[Segment, Recipient]] = []
    for number in range(1, count + 1):
        language = rng.choices(("en", "fr", "es", "ar"), (0.55, 0.35, 0.07, 0.03))[0]
        cadence = "weekly" if rng.random() < 0.15 else "monthly"
        parts = [_subscription(rng, spread, language, cadence)]
        if more.random() < several:
            # An NGO contact who also reads the public news, an officer who follows a Sector.
            for _ in range(more.choice((1, 1, 1, 2))):
                extra = _subscription(more, spread, language, cadence)
                if all((p.audience, p.key) != (extra.audience, extra.key) for p in parts):
                    parts.append(extra)
        segment = Segment.of_person(language, parts) if len(parts) > 1 else parts[0]
        reader = Recipient(number, f"reader{number}@example.org", f"Recipient {number}", language)
        out.append((segment, reader))
    return out


def digest_of(segment: Segment, rng: random.Random) -> Digest:
    """A digest as the builder would make it: 5 to 40 entries in 2 to 5 sections."""
    label = "2026-W48" if segment.cadence == "weekly" else "2026-11"
    period = Period.parse(label, ZONE)
    count = rng.randint(5, 40)
    kinds = rng.sample(CONTENT_KINDS, rng.randint(2, 5))
    by_kind: dict[str, list[DigestEntry]] = defaultdict(list)
    for number in range(count):
        kind = kinds[number % len(kinds)]
        by_kind[kind].append(
            DigestEntry(
                item_id=number,
                kind=kind,
                title=f"Item {number}: community libraries and learning cities in the region",
                summary="A summary of two or three sentences about what the partners did, "
                "where, with whom, and what comes next. " * rng.randint(1, 3),
                body_html="<p>Body</p>",
                link=f"https://ngo{number}.example.org/news/{segment.key}/{number}",
                language=segment.language,
                published_at=NOW - timedelta(days=number % 28),
                tags={"sectors": ["ED"], "countries": ["BD"]},
            )
        )
    sections = tuple(
        Section(kind, kind.replace("_", " ").capitalize(), tuple(entries))
        for kind, entries in by_kind.items()
    )
    references: tuple[ReferenceList, ...] = ()
    if segment.audience in ("liaison_committee", "member_state"):
        rows = tuple(
            (f"NGO {n}", "Education, Culture", "BD, CO, KE", f"contact{n}@ngo.example.org")
            for n in range(rng.randint(20, 80))
        )
        references = (
            ReferenceList(
                "ngo_directory", "NGO directory", ("Name", "Fields", "Countries", "Email"), rows
            ),
        )
    return Digest(
        segment,
        period,
        f"{segment.audience}:{segment.key} newsletter, {period.label}",
        sections,
        references,
        more_url=f"https://diffusion.example.org/feeds/{segment.audience}.{segment.language}.atom",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--several", type=float, default=0.2, help="Share of people with 2 or 3 subscriptions."
    )
    args = parser.parse_args(argv)

    calls = 0
    real = checks.mjml2html

    def counting(source: str, **options: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(source, **options)

    checks.mjml2html = counting  # count every MJML render the renderer makes

    home = Path(tempfile.mkdtemp(prefix="diffusion-bench-"))
    settings = load_settings(home=home, secret_key="benchmark-secret-for-signing-links-0123456789")
    started = time.perf_counter()
    people = subscribers(args.subscribers, args.seed, args.several)
    by_segment: dict[Segment, list[Recipient]] = defaultdict(list)
    held: dict[int, int] = defaultdict(int)
    for segment, reader in people:
        by_segment[segment].append(reader)
        held[len(segment.parts)] += 1
    generated = time.perf_counter() - started
    holding = ", ".join(f"{people:,} with {n}" for n, people in sorted(held.items()))
    print(
        f"people: {len(people):,} ({holding} subscription(s)) in {len(by_segment):,} segments "
        f"({generated:.1f} s)"
    )

    rng = random.Random(args.seed)
    render_seconds = personalise_seconds = 0.0
    messages = total_bytes = largest_html = trimmed = 0
    for edition_id, (segment, readers) in enumerate(
        sorted(by_segment.items(), key=lambda kv: kv[0].id), 1
    ):
        digest = digest_of(segment, rng)
        started = time.perf_counter()
        rendered = render.render_digest(digest, settings)
        edition = Edition(
            id=edition_id,
            segment=segment.id,
            audience=segment.audience,
            key=segment.key,
            language=segment.language,
            cadence=segment.cadence,
            period=digest.period.label,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            created_at=NOW,
        )
        template = MessageTemplate.from_edition(edition, settings, now=NOW)
        render_seconds += time.perf_counter() - started
        largest_html = max(largest_html, len(rendered.html.encode()))
        trimmed += rendered.trimmed > 0
        started = time.perf_counter()
        for reader in readers:
            total_bytes += len(template.personalise(reader))
            messages += 1
        personalise_seconds += time.perf_counter() - started

    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    segments = len(by_segment)
    verdict = "equal" if calls == segments else "NOT equal"
    total = render_seconds + personalise_seconds
    lines = (
        f"MJML renders (calls to mjml2html): {calls:,} for {segments:,} segments -- {verdict}",
        f"editions trimmed to fit {render.GMAIL_CLIP_BYTES:,} bytes: {trimmed}; "
        f"largest HTML: {largest_html:,} bytes",
        f"render + message template: {render_seconds:.1f} s, "
        f"{render_seconds / segments * 1000:.1f} ms a segment",
        f"personalised messages: {messages:,}, {total_bytes / 1e6:,.0f} MB "
        f"in {personalise_seconds:.1f} s, {personalise_seconds / messages * 1e6:.0f} µs a message",
        f"all in: {total:.1f} s, {total / messages * 1e6:.0f} µs a message (render share included)",
        f"peak memory (max RSS): {peak_kib / 1024:.0f} MiB",
    )
    print("\n".join(lines))
    if calls != len(by_segment):
        sys.exit(1)


if __name__ == "__main__":
    main()
