"""The errors Diffusion raises; only the CLI and the web layer turn them into exit codes."""


class DiffusionError(Exception):
    """Root of every error Diffusion raises on purpose."""


class ConfigError(DiffusionError, ValueError):
    """A setting is missing, malformed or contradicts another."""


class DatabaseError(DiffusionError, RuntimeError):
    """The database cannot be reached or is not at the expected schema."""


class InvalidInput(DiffusionError, ValueError):
    """A file, row or value given by a user cannot be used as it is.

    `field` names the form field at fault where there is one: the message is English, and a
    page in another language says what is wrong with that field in its own words.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownAudience(DiffusionError, LookupError):
    """An audience or audience key that the routing rules do not define."""


class UnknownRecord(DiffusionError, LookupError):
    """A source, item, subscriber or edition that is not in the database."""


class CollectError(DiffusionError, RuntimeError):
    """A source could not be fetched or parsed."""


class TemplateError(DiffusionError, ValueError):
    """An email template or its MJML is invalid; names the template and line."""


class DeliveryError(DiffusionError, RuntimeError):
    """A message could not be handed to the transport."""


class InvalidToken(DiffusionError, ValueError):
    """A subscription token is tampered with, malformed or expired."""


class OutboxUnavailable(DatabaseError):
    """The outbox's database stopped answering in the middle of a send."""
