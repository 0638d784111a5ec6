"""The plain-text part wraps every line at 72 columns, and a folded Subject reads back exactly."""

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from wcwidth import wcswidth

from diffusion import db
from diffusion.cli import cli
from diffusion.config import Settings, load_settings
from diffusion.contracts import Recipient, Segment
from diffusion.deliver import MessageTemplate
from diffusion.deliver.message import subject_header
from diffusion.models import Edition
from diffusion.preview import build_preview
from diffusion.render.text import TEXT_WIDTH
from diffusion.select.rules import load_rules
from diffusion.subscriptions import add_subscriber

NOW = datetime.now(UTC)
KEY = "k" * 40
LONE_URL = re.compile(r"^ *https?://\S+$")
AUDIENCES = (
    "ngo:ifla",
    "ngo:education-international",
    "sector:ED",
    "field_office:dakar",
    "field_office:dhaka",
    "member_state:CO",
    "national_commission:BD",
    "liaison_committee",
    "public",
)


@pytest.fixture(scope="module")
def demo_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(cli, ["--home", str(home), "demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return load_settings(home=home, secret_key=KEY)


@pytest.mark.parametrize("language", ["en", "fr"])
def test_every_line_of_the_text_part_fits_72_columns(
    demo_settings: Settings, language: str
) -> None:
    engine = db.engine_for(demo_settings)
    long_lines = []
    try:
        for audience in AUDIENCES:
            text = build_preview(
                engine,
                demo_settings,
                rules=load_rules(demo_settings.routing),
                audience=audience,
                language=language,
                subscriber_email=None,
                period=None,
                now=NOW,
            ).text
            assert text.strip(), audience
            long_lines += [
                (audience, line)
                for line in text.splitlines()
                if len(line) > TEXT_WIDTH and not LONE_URL.match(line)  # a URL stays whole
            ]
    finally:
        engine.dispose()
    assert long_lines == []


SUBJECTS = (
    "Bureau régional multisectoriel de l'UNESCO pour l'Afrique de l'Ouest (Sahel) : "
    "actions des ONG dans vos pays, novembre 2026",
    "pour actions (Sahel) multisectoriel pour pour l'Ouest pays, pour éducation l'Ouest 北京 "
    "(Sahel) dans : vos vos de Bureau",
    "pays, novembre l'Afrique : : pays, des 2026 vos de l'UNESCO 北京",
    ": l'UNESCO pour pour 2026 Bureau dans _x_ regional (Sahel) l'UNESCO regional",
    "NGO partners' newsletter " + "x" * 90 + " November 2026",
    "Новости партнёрства НПО и ЮНЕСКО: действия НПО в ваших странах, ноябрь 2026 года",
    "A subject that looks like =?utf-8?q?an_encoded_word?= but is not one, November 2026",
    "Short",
)


@pytest.mark.parametrize("subject", SUBJECTS)
def test_a_folded_subject_reads_back_exactly(subject: str, tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, secret_key=KEY)
    edition = Edition(
        id=7,
        segment=Segment("public").id,
        audience="public",
        period="2026-11",
        subject=subject,
        html="<p>x</p>",
        text="x",
        status="approved",
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    template = MessageTemplate.from_edition(edition, settings)
    data = template.personalise(
        Recipient(3, "a@example.org", "", "en"), "<m.1@diffusion.example.org>"
    )
    message = message_from_bytes(data, policy=policy.default)
    assert message["Subject"] == subject
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.count(b"Subject:") == 1
    folded = subject_header(subject)
    assert folded in head  # in its place among the headers
    for line in folded.splitlines():  # only a word longer than a line may stand alone past 78
        assert len(line) <= 78 or "x" * 90 in line, line


# A recipient's values are longer than their placeholders: every line still fits once filled.
LONG_NAME = "María de los Ángeles Fernández-Gutiérrez de la Concepción y Montenegro-Valderrama"
LONG_CJK_NAME = "爱新觉罗溥仪的一个非常非常长的名字用于测试中文姓名换行是否正确处理的情况"
READERS = (
    ("en", "long.name.reader@library-association.example.org", LONG_NAME),
    ("fr", "lecteur.au.nom.long@association-des-bibliotheques.example.org", LONG_NAME),
    ("zh", "zhang.reader@library-association.example.org", "欧阳娜娜"),
    ("zh", "long.cjk.name@library-association.example.org", LONG_CJK_NAME),
    ("ar", "arabic.reader@library-association.example.org", "عبد الرحمن بن عبد الله الأنصاري " * 3),
)


def _too_wide(text: str) -> list[str]:
    """The lines wider than 72 columns as a terminal shows them, a lone URL excepted."""
    return [
        line
        for line in text.splitlines()
        if wcswidth(line.replace("\u200b", "")) > TEXT_WIDTH and not LONE_URL.match(line)
    ]


@pytest.mark.parametrize(("language", "email", "name"), READERS)
def test_every_personalised_line_fits_72_columns(
    demo_settings: Settings, language: str, email: str, name: str
) -> None:
    engine = db.engine_for(demo_settings)
    rules = load_rules(demo_settings.routing)
    try:
        with db.session_scope(engine) as session:
            add_subscriber(session, email=email, name=name, language=language,
                           audience="public", now=NOW, rules=rules)  # fmt: skip
        preview = build_preview(engine, demo_settings, rules=rules, audience=None,
                                language=language, subscriber_email=email, period=None,
                                now=NOW)  # fmt: skip
    finally:
        engine.dispose()
    message = message_from_bytes(preview.eml, policy=policy.default)
    sent = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for text in (preview.text, sent):  # the preview's copy and the email's own part
        assert re.sub(r"\s+", "", name) in re.sub(r"\s+", "", text)  # whole, across lines
        assert email in text
        assert "\u200b" not in text and "[[diffusion:" not in text
        assert _too_wide(text) == []
