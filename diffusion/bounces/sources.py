"""Where returned mail is read: a maildir, an mbox, or an IMAP mailbox (imaps://user@host/INBOX).

Each source yields the messages it has not marked read, and marks (or moves) one once its
changes are committed: a crash in between reads it again, and the report key makes that count
once.
"""

import imaplib
import mailbox
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from diffusion.config import Settings
from diffusion.errors import DeliveryError, InvalidInput


class Source(Protocol):
    """A mailbox of returned mail."""

    name: str

    def unread(self) -> Iterator[tuple[str, bytes]]: ...
    def done(self, key: str) -> None: ...
    def close(self) -> None: ...


class FolderSource:
    """A maildir (read messages get the S flag and move to cur/) or an mbox (kept as it is: the
    report keys say what was read)."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        if path.is_dir():
            if not (path / "cur").is_dir() and not (path / "new").is_dir():
                raise InvalidInput(f"{path}: a folder but not a maildir (no cur/ or new/ inside)")
            self.box: mailbox.Mailbox[mailbox.Message] = mailbox.Maildir(path, create=False)
        elif path.is_file():
            self.box = mailbox.mbox(path, create=False)
        else:
            raise InvalidInput(f"{path}: no such maildir or mbox")

    def unread(self) -> Iterator[tuple[str, bytes]]:
        for key in self.box.keys():
            if (
                isinstance(self.box, mailbox.Maildir)
                and "S" in self.box.get_message(key).get_flags()
            ):
                continue
            with self.box.get_file(key) as handle:
                yield key, handle.read()

    def done(self, key: str) -> None:
        if isinstance(self.box, mailbox.Maildir):
            message = self.box.get_message(key)
            message.set_subdir("cur")
            message.add_flag("S")
            self.box[key] = message

    def close(self) -> None:
        self.box.close()


class ImapSource:
    """An IMAP folder over TLS: unseen messages are read without marking them (BODY.PEEK), then
    flagged \\Seen, or moved to `done_folder`, once counted."""

    def __init__(self, url: str, password: str, done_folder: str | None, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("imaps", "imap") or not parts.hostname or not parts.username:
            raise InvalidInput(f"{url}: expected imaps://user@host[:port]/FOLDER")
        self.name = f"{parts.scheme}://{parts.username}@{parts.hostname}{parts.path or '/INBOX'}"
        self.folder = unquote(parts.path.lstrip("/")) or "INBOX"
        self.done_folder = done_folder
        context = ssl.create_default_context()
        try:
            if parts.scheme == "imaps":
                self.imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    parts.hostname, parts.port or 993, ssl_context=context, timeout=timeout
                )
            else:  # imap:// still insists on TLS: passwords never cross in clear
                self.imap = imaplib.IMAP4(parts.hostname, parts.port or 143, timeout=timeout)
                self.imap.starttls(ssl_context=context)
            self.imap.login(unquote(parts.username), password)
            status, _ = self.imap.select(_quote(self.folder))
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
            raise DeliveryError(f"{self.name}: {exc}") from exc
        if status != "OK":
            raise InvalidInput(f"{self.name}: no folder {self.folder!r}")

    def unread(self) -> Iterator[tuple[str, bytes]]:
        try:
            yield from self._unread()
        except (OSError, imaplib.IMAP4.error) as exc:
            raise DeliveryError(f"{self.name}: {exc}") from exc

    def _unread(self) -> Iterator[tuple[str, bytes]]:
        status, data = self.imap.uid("SEARCH", "UNSEEN")
        if status != "OK" or not data or not data[0]:
            return
        for uid in data[0].split():
            status, fetched = self.imap.uid("FETCH", uid, "(BODY.PEEK[])")
            for item in fetched:
                if isinstance(item, tuple):
                    yield uid.decode(), item[1]

    def done(self, key: str) -> None:
        try:
            self._done(key)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise DeliveryError(f"{self.name}: {exc}") from exc

    def _done(self, key: str) -> None:
        self.imap.uid("STORE", key, "+FLAGS.SILENT", r"(\Seen)")
        if self.done_folder:
            status, _ = self.imap.uid("COPY", key, _quote(self.done_folder))
            if status == "OK":
                self.imap.uid("STORE", key, "+FLAGS.SILENT", r"(\Deleted)")
                self.imap.expunge()

    def close(self) -> None:
        try:
            self.imap.close()
            self.imap.logout()
        except (OSError, imaplib.IMAP4.error):
            pass  # the server went away first: nothing left to release


def _quote(folder: str) -> str:
    return '"' + re.sub(r'(["\\])', r"\\\1", folder) + '"'


def open_source(where: str | Path, settings: Settings) -> Source:
    """The source named by a path or an imaps:// address."""
    text = str(where)
    if re.match(r"^imaps?://", text):
        if settings.bounces.imap_password is None:
            raise InvalidInput(
                f"{text}: set DIFFUSION_BOUNCE_IMAP_PASSWORD to the mailbox's password"
            )
        return ImapSource(
            text,
            settings.bounces.imap_password.get_secret_value(),
            settings.bounces.imap_done_folder,
            settings.smtp.timeout,
        )
    return FolderSource(Path(text))
