"""The collection commands through click's runner: sources, collect, items."""

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from feedserver import FeedServer, rss
from sqlmodel import select

from diffusion import db
from diffusion.cli import cli, main
from diffusion.cli.base import console
from diffusion.models import Source


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as feed_server:
        yield feed_server


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator["Runner"]:
    # Wide enough that table cells are not wrapped, so the output can be searched.
    monkeypatch.setattr(console, "_width", 250)
    runner = Runner(tmp_path, database_url)
    assert runner("init").exit_code == 0
    yield runner


class Runner:
    def __init__(self, home: Path, database_url: str) -> None:
        self.base = ["--home", str(home), "--database-url", database_url]
        self.database_url = database_url

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(cli, [*self.base, *args], catch_exceptions=False)

    def sources(self) -> dict[str, Source]:
        engine = db.make_engine(self.database_url)
        with db.session_scope(engine) as session:
            rows = {row.name: row for row in session.exec(select(Source)).all()}
        engine.dispose()
        return rows


def test_sources_add_collect_and_list_items(run: Runner, server: FeedServer) -> None:
    assert "No feed sources yet" in run("collect").output
    good = server.route(
        "/ifla.xml",
        rss(
            [
                {
                    "title": "Reading clubs in Nairobi",
                    "link": "http://ngo.example.org/1",
                    "guid": "urn:ifla:1",
                    "description": "<p>Clubs</p>",
                    "pubDate": datetime(2026, 11, 2, 10, tzinfo=UTC),
                    "categories": ["ED", "KE"],
                },
                {
                    "title": "Archives in Kathmandu",
                    "link": "http://ngo.example.org/2",
                    "guid": "urn:ifla:2",
                    "pubDate": datetime(2026, 10, 2, 10, tzinfo=UTC),
                    "categories": ["CI", "NP"],
                },
            ]
        ),
        etag='"1"',
    )
    added = run(
        "sources", "add", good, "--kind", "ngo_action", "--name", "ifla",
        "--tag", "organisations=ifla", "--tag", "themes=libraries;reading", "--language", "en",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "Source ifla created" in added.output
    broken = server.route("/broken.xml", b"nope", status=500)
    assert run("sources", "add", broken, "--kind", "event", "--private").exit_code == 0
    sources = run.sources()
    assert sources["ifla"].tags == {"organisations": ["ifla"], "themes": ["libraries", "reading"]}
    default_name = next(name for name in sources if name != "ifla")
    assert default_name == f"127-0-0-1-{server.port}-broken-xml"
    assert sources[default_name].public is False

    collected = run("collect")
    assert collected.exit_code == 0, collected.output
    assert "ifla" in collected.output and "ok" in collected.output
    assert "HTTP 500" in collected.output
    assert "2 new, 0 updated, 1 source(s) failed" in collected.output

    again = run("collect", "--source", "ifla")
    assert again.exit_code == 0 and "not modified" in again.output
    assert server.bodies_sent("/ifla.xml") == 1
    only_broken = run("collect", "--source", default_name)  # every source asked for failed
    assert only_broken.exit_code == 1 and "1 source(s) failed" in only_broken.output

    listed = run("sources", "list")
    assert "HTTP 500" in listed.output and "organisations=ifla" in listed.output

    assert run("items", "list", "--count").output.strip() == "2"
    assert run("items", "list", "--count", "--sector", "ED").output.strip() == "1"
    assert run("items", "list", "--count", "--country", "np").output.strip() == "1"
    assert run("items", "list", "--count", "--since", "2026-11-01").output.strip() == "1"
    assert run("items", "list", "--count", "--kind", "event").output.strip() == "0"
    assert run("items", "list", "--count", "--limit", "1").output.strip() == "1"
    table = run("items", "list", "--format", "table")
    assert "Reading clubs in Nairobi" in table.output and "2 of 2 item(s)" in table.output

    dumped = json.loads(run("items", "list", "--format", "json").output)
    assert [entry["title"] for entry in dumped] == [
        "Reading clubs in Nairobi",
        "Archives in Kathmandu",
    ]
    first = dumped[0]
    assert first["tags"] == {
        "sectors": ["ED"],
        "countries": ["KE"],
        "themes": ["libraries", "reading"],
        "organisations": ["ifla"],
    }
    assert first["published_at"].startswith("2026-11-02T10:00:00")
    assert datetime.fromisoformat(first["published_at"]) == datetime(2026, 11, 2, 10, tzinfo=UTC)
    assert {"guid", "link", "summary", "body_html", "translations", "content_hash"} <= set(first)


def test_sources_import_reports_bad_rows_and_updates_in_place(run: Runner, tmp_path: Path) -> None:
    csv_file = tmp_path / "sources.csv"
    csv_file.write_text(
        "name,url,kind,sectors,countries,themes,language,public\n"
        'ifla,https://www.ifla.org/feed/,ngo_action,"CI;ED",NL,libraries,en,yes\n'
        "dakar,https://dakar.example.org/rss,field_office_activity,,SN;GM,,fr,\n"
        "bad-kind,https://x.example.org/rss,newsletter,,,,,\n"
        "bad-country,https://y.example.org/rss,ngo_action,,XX,,,\n"
        "bad-url,ftp://z.example.org/rss,ngo_action,,,,,\n"
        "bad-public,https://w.example.org/rss,ngo_action,,,,,maybe\n",
        encoding="utf-8",
    )
    result = run("sources", "import", str(csv_file))
    assert result.exit_code == 1
    assert "2 sources created, 0 updated, 0 unchanged, 4 rejected" in result.output
    assert f"{csv_file}:4: kind: 'newsletter' is not one of" in result.output
    assert f"{csv_file}:5: countries: 'XX' is not an ISO 3166-1 alpha-2 code" in result.output
    assert f"{csv_file}:6: url: 'ftp://z.example.org/rss'" in result.output
    assert f"{csv_file}:7: public: 'maybe' is not true or false" in result.output
    sources = run.sources()
    assert sources["ifla"].tags == {
        "sectors": ["CI", "ED"],
        "countries": ["NL"],
        "themes": ["libraries"],
    }
    assert (sources["dakar"].language, sources["dakar"].public) == ("fr", True)
    assert sources["dakar"].tags == {"countries": ["SN", "GM"]}

    csv_file.write_text(
        "name,url,kind,countries\n"
        "ifla,https://www.ifla.org/feed/,ngo_action,NL\n"
        "dakar,https://dakar.example.org/rss,field_office_activity,SN;GM\n",
        encoding="utf-8",
    )
    run("sources", "import", str(csv_file))
    again = run("sources", "import", str(csv_file))
    assert again.exit_code == 0, again.output
    assert "0 sources created, 0 updated, 2 unchanged, 0 rejected" in again.output
    assert run.sources()["ifla"].tags == {"countries": ["NL"]}
    assert len(run.sources()) == 2


def test_items_import_reads_editorial_entries(run: Runner, tmp_path: Path) -> None:
    folder = tmp_path / "entries"
    folder.mkdir()
    (folder / "forum.md").write_text(
        "---\nkind: forum_conclusion\ntitle: Conclusions\ndate: 2026-11-10\nlanguage: fr\n"
        "forums: [icngo-2020]\n---\nLes **conclusions**.\n",
        encoding="utf-8",
    )
    (folder / "bad.md").write_text(
        "---\nkind: forum_conclusion\ntitle: Bad\ndate: 2026-11-10\ncountries: [ZZ]\n---\n",
        encoding="utf-8",
    )
    result = run("items", "import", str(folder))
    assert result.exit_code == 1
    assert "1 entries created" in result.output
    assert f"{folder / 'bad.md'}:5: countries: 'ZZ'" in result.output
    dumped = json.loads(run("items", "list", "--format", "json").output)
    assert [(e["title"], e["language"], e["origin"]) for e in dumped] == [
        ("Conclusions", "fr", "editorial")
    ]


def test_bad_input_exits_2_with_a_message(
    run: Runner, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def main_exit(*args: str) -> int:
        monkeypatch.setattr(sys, "argv", ["diffusion", *run.base, *args])
        with pytest.raises(SystemExit) as stopped:
            main()
        return int(stopped.value.code or 0)

    assert main_exit("collect", "--source", "nowhere") == 2
    assert "no source named nowhere" in capsys.readouterr().err
    assert main_exit("sources", "add", "https://a.example.org/", "--kind", "x") == 2
    assert main_exit("sources", "add", "gopher://a.example.org/", "--kind", "event") == 2
    assert "gopher" in capsys.readouterr().err
    assert main_exit("sources", "add", "https://a.example.org/", "-k", "event", "-t", "x=1") == 2
    assert "unknown tag key" in capsys.readouterr().err
    assert main_exit("sources", "add", "https://a.example.org/", "-k", "event", "-l", "zz9") == 2
    assert run.sources() == {}
