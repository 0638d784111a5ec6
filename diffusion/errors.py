"""The errors Diffusion raises; only the CLI and the web layer turn them into exit codes."""


class DiffusionError(Exception):
    """Root of every error Diffusion raises on purpose."""

    # The CLI's exit status: 1 when the work failed, 2 when the command was used wrongly.
    exit_code = 1


class ConfigError(DiffusionError, ValueError):
    """A setting is missing, malformed or contradicts another."""

    exit_code = 2


class DatabaseError(DiffusionError, RuntimeError):
    """The database cannot be reached or is not at the expected schema."""


class SchemaNotReady(DatabaseError):
    """The database is missing, empty or at an older schema: `init` or `db upgrade` comes first."""

    exit_code = 2


class InvalidInput(DiffusionError, ValueError):
    """A file, row or value given by a user cannot be used as it is.

    `field` names the form field at fault where there is one: the message is English, and a
    page in another language says what is wrong with that field in its own words.
    """

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownAudience(DiffusionError, LookupError):
    """An audience or audience key that the routing rules do not define."""

    exit_code = 2


class UnknownRecord(DiffusionError, LookupError):
    """A source, item, subscriber or edition that is not in the database."""

    exit_code = 2


class CollectError(DiffusionError, RuntimeError):
    """A source could not be fetched or parsed."""


class TemplateError(DiffusionError, ValueError):
    """An email template or its MJML is invalid; names the template and line."""

    exit_code = 2


class DeliveryError(DiffusionError, RuntimeError):
    """A message could not be handed to the transport."""


class InvalidToken(DiffusionError, ValueError):
    """A subscription token is tampered with, malformed or expired."""

    exit_code = 2


class OutboxUnavailable(DatabaseError):
    """The outbox's database stopped answering in the middle of a send."""
