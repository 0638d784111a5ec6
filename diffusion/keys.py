"""Signing keys: where they come from, how long they must be, and how the key file is made.

Links that change a subscription (confirm, unsubscribe, preferences) and the archive's
signatures are signed with the current key; older keys still verify, so a key can be rotated
without breaking the links already mailed. A key is refused when shorter than MIN_KEY_BYTES:
an empty key lets anyone forge every link.
"""

import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from diffusion.errors import ConfigError

MIN_KEY_BYTES = 32
# Tables whose rows mean that signed links have been handed out (the first names the people
# table before and after its split into people and subscriptions).
ISSUED_LINK_TABLES = ("subscribers", "subscriptions", "editions")
FILE_HINT = "make one with `diffusion init --new-key`"
ENVIRONMENT_HINT = "make one with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"


class MissingKey(ConfigError):
    """The key file does not exist (never created, or deleted)."""


def new_key() -> str:
    """A fresh key: 32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(MIN_KEY_BYTES)


def check_keys(keys: Sequence[str], source: str, hint: str = FILE_HINT) -> tuple[str, ...]:
    """The keys, current first, if every one is long enough; ConfigError naming `source`."""
    if not keys:
        raise ConfigError(f"{source}: the signing key is empty; {hint}")
    for position, key in enumerate(keys, 1):
        size = len(key.encode("utf-8"))
        if size < MIN_KEY_BYTES:
            which = f"signing key {position}" if len(keys) > 1 else "the signing key"
            length = "is empty" if size == 0 else f"is {size} bytes long"
            raise ConfigError(
                f"{source}: {which} {length}; a key needs at least {MIN_KEY_BYTES} bytes ({hint})"
            )
    return tuple(keys)


def split_keys(text: str) -> list[str]:
    """Keys separated by spaces, commas or lines; lines starting with # are comments."""
    keys: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        keys.extend(part for part in line.replace(",", " ").split() if part)
    return keys


def read_key_file(path: Path) -> tuple[str, ...]:
    """The keys of the key file, current first; MissingKey or ConfigError naming the file."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError as exc:
        raise MissingKey(
            f"{path}: no signing key file; run `diffusion init` to create it, or set "
            "DIFFUSION_SECRET_KEY (the same on every host that signs or reads links)"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the signing key: {exc}") from exc
    return check_keys(split_keys(text), str(path))


def _write_temporary(path: Path, keys: Sequence[str]) -> Path:
    """A new file beside `path` holding the keys, mode 0600, on disk before it is named."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, ("\n".join(keys) + "\n").encode("utf-8"))
        os.fsync(descriptor)  # a full disk fails here, before the file has its name
    except OSError:
        os.close(descriptor)
        temporary.unlink(missing_ok=True)
        raise
    os.close(descriptor)
    return temporary


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def create_key_file(path: Path) -> tuple[str, ...]:
    """The key file's keys, creating it with a new key if it does not exist.

    Several processes creating it at once end up with one key: each writes its own temporary
    file, and the first to link it under the final name wins (a link, unlike a rename, never
    replaces a file that exists); the others read the winner's key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        try:
            temporary = _write_temporary(path, [new_key()])
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write the signing key: {exc}") from exc
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process was first: its key is the key
        finally:
            temporary.unlink(missing_ok=True)
        _sync_folder(path.parent)
    return read_key_file(path)


def replace_key_file(path: Path) -> tuple[str, ...]:
    """Put a new current key in the key file; the valid keys it held still verify."""
    try:
        previous = list(read_key_file(path))
    except ConfigError:
        previous = []  # missing, empty or too short: nothing worth keeping
    keys = [new_key(), *previous]
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        temporary = _write_temporary(path, keys)
        os.replace(temporary, path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the signing key: {exc}") from exc
    _sync_folder(path.parent)
    return tuple(keys)


def links_issued(engine: Engine) -> bool:
    """Whether the database holds anyone or anything a signed link may have been sent for."""
    names = set(sa.inspect(engine).get_table_names())
    with engine.connect() as connection:
        for table in ISSUED_LINK_TABLES:
            if table in names:
                query = sa.select(sa.literal(1)).select_from(sa.table(table)).limit(1)
                if connection.execute(query).first() is not None:
                    return True
    return False
