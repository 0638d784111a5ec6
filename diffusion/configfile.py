"""Where settings come from: diffusion.toml, DIFFUSION_* variables, and the flat names of both.

Settings are grouped in sections (`[smtp] url`, `settings.smtp.url`). The names from before
the sections (`smtp_url` in diffusion.toml, `DIFFUSION_SMTP_URL`, `load_settings(smtp_url=)`)
stay aliases: each source nests them into their section before the sources are merged, so
that the environment still overrides the file whichever spelling either uses.
"""

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from diffusion.errors import ConfigError

PREFIX = "DIFFUSION_"


def config_file(home: Any) -> Path:
    """The settings file: DIFFUSION_CONFIG, else diffusion.toml in the data directory."""
    explicit = os.environ.get("DIFFUSION_CONFIG")
    if explicit:
        return Path(explicit)
    base = Path(home or os.environ.get("DIFFUSION_HOME") or Path.cwd())
    return base / "diffusion.toml"


def flat_names(settings_cls: type[BaseSettings]) -> dict[str, tuple[str, str]]:
    """Each flat name (`smtp_url`) and the (section, key) it stands for (`smtp`, `url`)."""
    names: dict[str, tuple[str, str]] = {}
    for section, field in settings_cls.model_fields.items():
        model = field.annotation
        flat = getattr(model, "flat_name", None)
        if flat is None or not isinstance(model, type):
            continue
        for key in model.model_fields:
            names[flat(key)] = (section, key)
    return names


def nest(settings_cls: type[BaseSettings], values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`values` with every flat name moved into its section; a setting given twice is refused."""
    names = flat_names(settings_cls)
    nested: dict[str, Any] = {}
    for name, value in values.items():
        if name in names:
            continue
        nested[name] = (
            dict(value) if name in _sections(names) and isinstance(value, dict) else value
        )
    for name, value in values.items():
        if name not in names:
            continue
        section, key = names[name]
        table = nested.setdefault(section, {})
        if not isinstance(table, dict):
            continue  # a section that is not a table: validation says so
        if key in table:
            raise ConfigError(
                f"{where}: {name} and [{section}] {key} are the same setting; keep one of them"
            )
        table[key] = value
    return nested


def _sections(names: dict[str, tuple[str, str]]) -> set[str]:
    return {section for section, _ in names.values()}


def read_toml(path: Path) -> dict[str, Any]:
    """The file's tables ({} without a file); a syntax error is one line with file:line:column."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r" \(at line (\d+), column (\d+)\)$", message)
        if found:
            where = f"{found.group(1)}:{found.group(2)}"
            message = message[: found.start()]
        else:  # "at end of document": the last line
            text = path.read_text(encoding="utf-8", errors="replace")
            lines = text.splitlines() or [""]
            where = f"{len(lines)}:{len(lines[-1]) + 1}"
            message = re.sub(r" \(at end of document\)$", " at the end of the file", message)
        raise ConfigError(f"{path}:{where}: not valid TOML: {message}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the settings: {exc.strerror or exc}") from exc


class FileSource(PydanticBaseSettingsSource):
    """diffusion.toml, flat keys nested; a secret in it is refused, naming its variable."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path, secrets: tuple[str, ...]):
        super().__init__(settings_cls)
        self.path = path
        self.data = nest(settings_cls, read_toml(path), str(path))
        for dotted in secrets:
            if has_key(self.data, dotted):
                raise ConfigError(
                    f"{path}: {dotted} is a secret; set {env_name(dotted)} "
                    "in the environment instead"
                )

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.data


class FlatEnvironment(PydanticBaseSettingsSource):
    """The flat DIFFUSION_* names of sectioned settings (DIFFUSION_SMTP_URL for smtp.url)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        environ = {name.upper(): value for name, value in os.environ.items()}
        self.data: dict[str, dict[str, str]] = {}
        for flat, (section, key) in flat_names(settings_cls).items():
            value = environ.get(PREFIX + flat.upper())
            if value is not None:
                self.data.setdefault(section, {})[key] = value

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


class Nested(PydanticBaseSettingsSource):
    """Another source (the flags given to load_settings) with its flat names nested."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        return nest(self.settings_cls, self.inner(), "settings")


def has_key(data: Mapping[str, Any], dotted: str) -> bool:
    """Whether `data` holds `section.key` (or a top-level key)."""
    head, _, rest = dotted.partition(".")
    if not rest:
        return head in data
    table = data.get(head)
    return isinstance(table, dict) and rest in table


def env_name(dotted: str) -> str:
    """The variable of a setting, as the documentation gives it (the flat name)."""
    return PREFIX + dotted_to_flat.get(dotted, dotted.replace(".", "_")).upper()


# Filled by config.py once the sections are defined: "smtp.url" -> "smtp_url".
dotted_to_flat: dict[str, str] = {}


def setting_origin(dotted: str, home: Any = None) -> str:
    """Where a setting (`timezone`, `smtp.url`, or a whole section `dkim`) was given."""
    return locate(dotted, home)[0]


def locate(dotted: str, home: Any = None, flags: Mapping[str, Any] = {}) -> tuple[str, str]:
    """Where a setting was given, and its name as given there (`smtp_url` or `smtp.url`).

    Its environment variable (flat or sectioned), else the config file, else a flag.
    """
    covered = [key for key in dotted_to_flat if key.startswith(dotted + ".")] or [dotted]
    flat = dotted_to_flat.get(dotted, dotted)
    environ = {name.upper() for name in os.environ}
    for key in covered:
        head, _, rest = key.partition(".")
        if env_name(key) in environ:
            return f"environment variable {env_name(key)}", flat
        for variable in (f"{PREFIX}{head.upper()}__{rest.upper()}", f"{PREFIX}{head.upper()}"):
            if rest and variable in environ:
                return f"environment variable {variable}", dotted
    if flat in flags:
        return f"--{flat.replace('_', '-')}", flat
    path = config_file(home)
    try:
        raw = read_toml(path)
    except ConfigError:
        raw = {}
    if any(dotted_to_flat.get(key, key) in raw for key in covered):
        return str(path), flat
    if dotted in raw or any(has_key(raw, key) for key in covered):
        return str(path), dotted
    return f"--{flat.replace('_', '-')}", dotted
