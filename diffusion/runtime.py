"""The runtime of one process: settings, database engine, routing rules and signing keys.

Built once (by a CLI invocation, by `diffusion serve`, by a test) and closed once, as
`reader.Reader` and sqlite-utils' `Database` serve their command lines: the commands and the
web pages are adapters over it. Everything is read when first asked for, so that a command
that needs no database opens none, and a command run before `diffusion init` creates nothing.
"""

from functools import cached_property
from types import TracebackType

from sqlalchemy.engine import Engine

from diffusion import db
from diffusion.config import Settings
from diffusion.select.rules import RoutingRules, load_rules


class Runtime:
    """What the stages are handed: the settings, the engine, the routing rules and the keys."""

    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        """`engine`: one that the caller made and will dispose of; else made when first used."""
        self.settings = settings
        self._engine = engine
        self._owns_engine = engine is None

    @property
    def engine(self) -> Engine:
        """The database engine, made on first use and disposed of by close()."""
        if self._engine is None:
            self._engine = db.engine_for(self.settings)
        return self._engine

    @property
    def has_engine(self) -> bool:
        return self._engine is not None

    @cached_property
    def rules(self) -> RoutingRules:
        """The routing rules (settings.routing), read once; RoutingError names the file."""
        return load_rules(self.settings.routing)

    @property
    def keys(self) -> tuple[str, ...]:
        """The signing keys, current first; read once (see Settings.keys_in_use)."""
        return self.settings.signing_keys()

    @property
    def signing_key(self) -> str:
        return self.settings.signing_key()

    def close(self) -> None:
        """Dispose of the engine this runtime made (its pooled connections); idempotent."""
        if self._engine is not None and self._owns_engine:
            self._engine.dispose()
        self._engine = None if self._owns_engine else self._engine

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()
