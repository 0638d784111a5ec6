"""Routing each item once to the keys it reaches gives every feed the items trying each key does."""

import random

from digest_dataset import directory, forums, items, offices, organisations

from diffusion.config import bundled_path
from diffusion.deliver.feeds import family_keys, feed_items, route_feeds
from diffusion.models import CONTENT_KINDS, SECTORS, Item, Organisation
from diffusion.select.directory import Directory
from diffusion.select.matchers import RoutingIndex
from diffusion.select.rules import load_rules

RULES = load_rules(bundled_path("routing"))
COUNTRIES = ["BD", "KE", "CO", "FJ", "SN", "NP", "FR", "WS", "UG", "RW"]
THEMES = ["literacy", "civic space", "youth", "ed", "ED", "heritage"]


def _random_items(rng: random.Random, count: int) -> list[Item]:
    slugs = [org.slug for org in organisations()] + ["unknown-ngo"]
    codes = [office.code for office in offices()] + ["nowhere"]
    forum_slugs = [forum.slug for forum in forums()]
    made = []
    for number in range(count):
        tags = {
            "sectors": rng.sample([*SECTORS, "ed"], rng.randint(0, 2)),
            "countries": rng.sample([*COUNTRIES, "bd"], rng.randint(0, 3)),
            "themes": rng.sample(THEMES, rng.randint(0, 2)),
            "organisations": rng.sample(slugs, rng.randint(0, 2)),
            "field_offices": rng.sample(codes, rng.randint(0, 2)),
            "forums": rng.sample(forum_slugs, rng.randint(0, 1)),
        }
        made.append(
            Item(
                id=1000 + number,
                guid=f"urn:random:{number}",
                kind=rng.choice(CONTENT_KINDS),
                title=f"Item {number}",
                public=rng.random() > 0.2,
                published_at=items()[number % 11].published_at,
                content_hash=f"{number:064d}",
                tags={name: values for name, values in tags.items() if values},
            )
        )
    return made


def test_route_once_agrees_with_trying_every_key() -> None:
    rng = random.Random(14)
    extra = Organisation(slug="kenya-ngo", name="Kenya NGO", sectors=["SC", "ED"],
                         themes=["Heritage"], countries=["ke", "UG"])  # fmt: skip
    base = directory()
    dirs = Directory.of(
        [*base.organisations.values(), extra], base.offices.values(), base.forums.values()
    )
    every = [*items(), *_random_items(rng, 400)]
    index = RoutingIndex(every)
    checked = 0
    for family in RULES.feeds.values():
        keys = family_keys(family, dirs, every)
        routed = route_feeds(every, RULES, family, keys, dirs, index)
        for key in keys:
            expected = feed_items(every, RULES, family, key, dirs, index)
            assert routed.get(key, []) == expected, (family.name, key)
            checked += len(expected)
    assert checked > 500
