#!/usr/bin/env python3
# ruff: noqa: E501  (the table quotes source lines exactly as they are)
"""The guard audit: each guard the product relies on, removed alone, must fail a named test.

    .venv/bin/python scripts/guard_audit.py            # every guard of the table
    .venv/bin/python scripts/guard_audit.py spent-link one-click
    .venv/bin/python scripts/guard_audit.py --list

For each guard it replaces one exact piece of source (found in the file named, or, after a
move, in the one file of diffusion/ that holds it), runs the named tests with `-x`, restores
the file byte for byte (also on Ctrl-C), and says which test failed. A guard that no test
catches, or a piece of source the table no longer finds, makes the exit code 1: write the
missing test, or update the table. A guarded file with uncommitted changes is refused, so the
audit never mixes with work in progress.
"""

import argparse
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "diffusion"


@dataclass(frozen=True)
class Guard:
    name: str
    path: str  # where the guard is; searched for in diffusion/ when it moved
    old: str  # the exact source of the guard, found once
    new: str  # the same code without the guard
    tests: tuple[str, ...]  # pytest node ids or files; at least one must fail


GUARDS = (
    Guard(
        "own-relay-breaker",  # an office relay's faults hold back only that office's messages
        "diffusion/deliver/loop.py",
        "        if relay is None:\n            return self.breaker\n",
        "        if True:\n            return self.breaker\n",
        (
            "tests/test_deliver_senders.py::test_when_the_office_relay_refuses_only_its_mail_waits_and_never_takes_the_shared_relay",
        ),
    ),
    Guard(
        "spent-link",  # a confirmation link made before an unsubscribe cannot bring them back
        "diffusion/web/confirm.py",
        "if person is None or wish is None or subscriptions.spent(person, issued_at):",
        "if person is None or wish is None:",
        (
            "tests/test_subscriptions.py::test_a_used_confirmation_link_cannot_resubscribe_after_an_unsubscribe",
            "tests/test_subscriptions.py::test_a_link_mailed_before_an_unsubscribe_cannot_bring_the_person_back",
        ),
    ),
    Guard(
        "spent-link-domain",  # the same rule in the domain, whatever adapter calls confirm()
        "diffusion/subscriptions/confirming.py",
        "    if spent(person, issued_at):\n        raise Suppressed(",
        "    if False:\n        raise Suppressed(",
        (
            "tests/test_subscriptions.py::test_confirming_refuses_a_link_made_before_the_person_left_whoever_calls_it",
        ),
    ),
    Guard(
        "leading-dot",  # SMTP DATA: a line starting with "." is escaped (RFC 5321 4.5.2)
        "diffusion/deliver/quotedprintable.py",
        'if line[:1] == b".":\n            line = b"=2E" + line[1:]',
        'if line[:1] == b".":\n            pass',
        ("tests/test_deliver_message.py",),
    ),
    Guard(
        "suppressed-not-reimported",  # unsubscribed, bounced, complained: no import brings back
        "diffusion/subscriptions/suppression.py",
        "    if person is not None and person.status in SUPPRESSED:\n        return person.status\n",
        "",
        ("tests/test_subscriptions.py", "tests/test_subscribers.py"),
    ),
    Guard(
        "erased-not-reimported",  # an erased address is remembered by its hash
        "diffusion/subscriptions/suppression.py",
        '    if person is None and secret and erased(session, email, secret):\n        return "erased"\n',
        "",
        ("tests/test_subscriptions.py", "tests/test_subscribers.py"),
    ),
    Guard(
        "lease-renewal",  # the send loop renews the lease of the rows it holds
        "diffusion/deliver/loop.py",
        "                kept = self.store.renew(self.worker, set(self.held), now=self.now())\n"
        "            except OutboxUnavailable as exc:\n                self._lost_store(exc)",
        "                kept = set(self.held)\n"
        "            except OutboxUnavailable as exc:\n                self._lost_store(exc)",
        (  # the in-memory store first: the two-worker race over PostgreSQL depends on timing
            "tests/test_deliver_loop.py::test_rows_taken_over_by_another_worker_are_neither_sent_nor_recorded",
            "tests/test_deliver_lease.py",
        ),
    ),
    Guard(
        "sector-matcher",  # a routing matcher: items of a Sector go to that Sector
        "diffusion/select/matchers.py",
        "    return key.upper() in sectors\n",
        "    return False\n",
        ("tests/test_routing.py",),
    ),
    Guard(
        "sanitiser-url-schemes",  # only http, https and mailto links survive the sanitiser
        "diffusion/collect/sanitize.py",
        "    url_schemes=_URL_SCHEMES,\n",
        "",
        ("tests/test_collect_sanitize.py",),
    ),
    Guard(
        "signed-link",  # an unsubscribe link's signature is verified
        "diffusion/tokens.py",
        "value = _signer(secret, purpose).unsign(token, max_age=max_age_seconds)",
        'value = token.partition(".")[0]',
        ("tests/test_web.py", "tests/test_keys.py"),
    ),
    Guard(
        "signed-claims",  # a confirmation link's signed claims are verified
        "diffusion/tokens.py",
        "claims = _serializer(secret, purpose).loads(token, max_age=max_age_seconds)",
        "claims = _serializer(secret, purpose).loads_unsafe(token)[1]",
        ("tests/test_web.py", "tests/test_keys.py"),
    ),
    Guard(
        "empty-key",  # an empty signing key is refused (anyone could forge every link)
        "diffusion/keys.py",
        "        if size < MIN_KEY_BYTES:",
        "        if 0 < size < MIN_KEY_BYTES:",
        ("tests/test_keys.py",),
    ),
    Guard(
        "enqueue-active-only",  # an unsubscribed or bounced person is not queued
        "diffusion/subscriptions/segments.py",
        'conditions = [people.c.status == "active", people.c.id > last]',
        "conditions = [people.c.id > last]",
        (
            "tests/test_deliver_outbox.py::test_people_who_bounced_or_complained_are_not_queued_though_their_subscriptions_stay",
        ),
    ),
    Guard(
        "send-active-only",  # who left between the queue and their turn is skipped
        "diffusion/deliver/loop.py",
        '        if item.status != "active":\n            reason = f"not sent',
        '        if False:\n            reason = f"not sent',
        ("tests/test_deliver_outbox.py", "tests/test_deliver_loop.py"),
    ),
    Guard(
        "archive-visibility",  # a non-public edition opens only with its link's signature
        "diffusion/web/archive.py",
        "    return edition if links.archive_signature_ok(web.settings, edition_id, signature) else None",
        "    return edition",
        ("tests/test_web_pages.py", "tests/test_web.py"),
    ),
    Guard(
        "archive-listing",  # the public archive lists public editions only
        "diffusion/web/archive.py",
        '.where(Edition.status == "sent", col(Edition.audience).in_(LISTED_AUDIENCES))',
        '.where(Edition.status == "sent")',
        ("tests/test_web.py", "tests/test_web_pages.py"),
    ),
    Guard(
        "routing-public-only",  # public_only routing leaves out what is not public
        "diffusion/select/matchers.py",
        "if not view.public and (public_only or not rule.include_private):",
        "if not view.public and not rule.include_private:",
        ("tests/test_routing.py", "tests/test_feed_routing.py", "tests/test_feeds_output.py"),
    ),
    Guard(
        "form-body-limit",  # a declared body over the limit is refused before it is read
        "diffusion/web/limits.py",
        "        if declared > limit:\n",
        "        if False:\n",
        ("tests/test_web_limits.py",),
    ),
    Guard(
        "form-body-limit-counted",  # a chunked body is counted as it arrives
        "diffusion/web/limits.py",
        "                if received > limit:\n",
        "                if False:\n",
        ("tests/test_web_limits.py",),
    ),
    Guard(
        "one-click-unsubscribe",  # RFC 8058: the mail client's POST needs no CSRF token
        "diffusion/web/unsubscribe.py",
        "one_click = form is not None and form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE",
        "one_click = False",
        ("tests/test_web.py",),
    ),
    Guard(
        "csrf",  # a form posted without the page's token is refused
        "diffusion/web/protection.py",
        "    return hmac.compare_digest(csrf_token(secret, cookie), field)",
        "    return True",
        ("tests/test_web.py", "tests/test_web_protection.py"),
    ),
    Guard(
        "soft-bounce-threshold",  # soft bounces mark a person bounced at the limit, not before
        "diffusion/bounces/apply.py",
        "        if subscriber.soft_bounces >= settings.bounces.soft_limit:",
        "        if subscriber.soft_bounces >= 1:",
        ("tests/test_bounces.py",),
    ),
    Guard(
        "hard-bounce",  # a hard bounce marks the person bounced
        "diffusion/bounces/apply.py",
        '            "bounced" if _transition(session, subscriber, "bounced", event=event, now=now) else None',
        "            None",
        ("tests/test_bounces.py",),
    ),
    Guard(
        "send-failed-count",  # worker processes' failures reach the send's summary
        "diffusion/deliver/summary.py",
        "        self.failed += other.failed\n",
        "",
        ("tests/test_deliver_crash.py::test_worker_processes_share_the_outbox",),
    ),
    Guard(
        "claim-skip-locked",  # two senders never claim the same row
        "diffusion/deliver/outbox.py",
        "            .with_for_update(skip_locked=True)\n",
        "",
        (  # SQLite has no row locks: the PostgreSQL runs are the ones that can fail
            "tests/test_deliver_crash.py::test_two_sender_processes_on_one_database_send_each_message_once",
            "tests/test_deliver_crash.py::test_worker_processes_share_the_outbox",
            "tests/test_exactly_once.py",
        ),
    ),
    Guard(
        "html-autoescape",  # what a feed says is escaped in the email's HTML
        "diffusion/render/environment.py",
        '            enabled_extensions=("mjml.j2", "html.j2", "mjml", "html"),',
        "            enabled_extensions=(),",
        ("tests/test_render.py",),
    ),
    Guard(
        "subject-control-characters",  # no CR/LF in a Subject made from a title
        "diffusion/render/text.py",
        '    kept = "".join(ch if ch.isprintable() or ch in _BIDI_ISOLATES else " " for ch in title)',
        "    kept = title",
        ("tests/test_render.py::test_subject_keeps_no_control_character_of_a_title",),
    ),
    Guard(
        "csv-formula",  # an exported cell starting with = + - @ is not run by a spreadsheet
        "diffusion/cli/output.py",
        '                neutralise_formula(_cell_text(cell, ";"))\n',
        '                _cell_text(cell, ";")\n',
        (
            "tests/test_cli_output.py::test_subscribers_csv_export_neutralises_formulas_and_imports_back",
            "tests/test_cli_output.py::test_csv_cells_that_a_spreadsheet_would_run_are_neutralised",
        ),
    ),
    Guard(
        "csp-header",  # every page carries the Content-Security-Policy
        "diffusion/web/headers.py",
        '                headers.setdefault("Content-Security-Policy", policy)\n',
        "",
        ("tests/test_web_protection.py", "tests/test_web_pages.py"),
    ),
    Guard(
        "sender-relay-only",  # an office identity's messages never go through the shared relays
        "diffusion/deliver/relays.py",
        "relays = self.relays if own is None else [self.own[own]]",
        "relays = self.relays if own is None else [self.own[own], *self.relays]",
        (
            "tests/test_deliver_senders.py::test_when_the_office_relay_refuses_its_mail_never_goes_through_the_shared_relay",
        ),
    ),
    Guard(
        "sender-bounce-domain",  # mail returned to an office identity's VERP address still counts
        "diffusion/bounces/verp.py",
        "        for sender in settings.senders\n    }",
        "        for sender in []\n    }",
        ("tests/test_deliver_senders.py::test_a_bounce_of_an_office_message_names_its_recipient",),
    ),
    Guard(
        "sender-own-login",  # an office relay never gets the shared relays' password
        "diffusion/deliver/relayserver.py",
        "            secret = sender.password",
        "            pass",
        (
            "tests/test_deliver_senders.py::test_an_office_relay_logs_in_with_its_own_password_never_the_shared_one",
        ),
    ),
)


def _locate(guard: Guard) -> Path | None:
    hinted = ROOT / guard.path
    if hinted.exists() and hinted.read_text(encoding="utf-8").count(guard.old) == 1:
        return hinted
    holding = [
        path
        for path in PACKAGE.rglob("*.py")
        if path.read_text(encoding="utf-8").count(guard.old) == 1
    ]
    return holding[0] if len(holding) == 1 else None


def _dirty(path: Path) -> bool:
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return bool(status.stdout.strip())


def _run_tests(tests: tuple[str, ...]) -> tuple[int, str]:
    command = [sys.executable, "-m", "pytest", "-q", "-x", "--no-header", "-p", "no:cacheprovider"]
    done = subprocess.run([*command, *tests], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def audit(guard: Guard) -> tuple[bool, str]:
    """Remove the guard, run its tests, restore it; (caught, what happened)."""
    path = _locate(guard)
    if path is None:
        return False, f"not found once in {guard.path} nor in diffusion/: update the table"
    if _dirty(path):
        return False, f"{path.relative_to(ROOT)} has uncommitted changes: commit or stash first"
    original = path.read_bytes()
    started = time.monotonic()
    try:
        path.write_text(original.decode("utf-8").replace(guard.old, guard.new, 1), "utf-8")
        code, output = _run_tests(guard.tests)
    finally:
        path.write_bytes(original)
    seconds = time.monotonic() - started
    where = path.relative_to(ROOT)
    if code == 1:
        failed = re.findall(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", output, flags=re.M)
        return True, f"{where}: caught by {', '.join(failed) or '?'} ({seconds:.0f} s)"
    if code == 0:
        return False, f"{where}: NOT CAUGHT, every named test passed without it ({seconds:.0f} s)"
    tail = " | ".join(output.strip().splitlines()[-3:])
    return False, f"{where}: pytest could not run the tests (exit {code}): {tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("names", nargs="*", help="guards to audit (default: all)")
    parser.add_argument("--list", action="store_true", help="list the guards and their tests")
    args = parser.parse_args()
    known = {guard.name: guard for guard in GUARDS}
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"unknown guard {unknown[0]!r}; known: {', '.join(known)}")
    chosen = [known[name] for name in args.names] or list(GUARDS)
    if args.list:
        for guard in chosen:
            print(f"{guard.name}\t{guard.path}\t{' '.join(guard.tests)}")
        return 0
    # A SIGTERM restores the file as Ctrl-C does: through the finally of audit().
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    missed = 0
    for guard in chosen:
        caught, said = audit(guard)
        missed += not caught
        print(f"{'ok  ' if caught else 'MISS'} {guard.name}: {said}", flush=True)
    print(f"{len(chosen) - missed} of {len(chosen)} guards caught by a test")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
