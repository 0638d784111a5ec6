"""The ASGI application of `diffusion serve`: its routes and middleware."""

import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from diffusion import db, render
from diffusion.config import Settings
from diffusion.errors import DiffusionError
from diffusion.runtime import Runtime
from diffusion.web import archive, confirm, pages, preferences, subscribe, unsubscribe, webhooks
from diffusion.web.base import TEMPLATES_DIR, Web, web_of
from diffusion.web.headers import SecurityHeaders
from diffusion.web.limits import BodyLimit
from diffusion.web.protection import RateLimiter

mimetypes.add_type("application/rss+xml", ".rss")
mimetypes.add_type("application/atom+xml", ".atom")


def _database_ok(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return type(exc).__name__
    return None


async def healthz(request: Request) -> Response:
    problem = await run_in_threadpool(_database_ok, web_of(request).engine)
    if problem:
        return JSONResponse({"status": "error", "database": problem}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


def create_app(runtime: Runtime | Settings) -> Starlette:
    """The ASGI application of `diffusion serve`, over the process's runtime.

    The runtime's owner closes it; given only settings (tests, `uvicorn --factory`), the app
    builds its own runtime and closes it when it stops. Raises TemplateError (naming the
    template and line) when an email template does not compile, and ConfigError for an
    unusable key, so that the service does not start only to fail at the next build.
    """
    own = isinstance(runtime, Settings)
    if isinstance(runtime, Settings):
        runtime = Runtime(runtime)
    settings = runtime.settings
    render.check_templates(settings)
    runtime.keys  # noqa: B018  (an empty, short or missing key stops the start, naming its source)
    if own:  # a runtime handed in was checked by its owner (the CLI's engine is)
        try:
            db.require_schema(runtime.engine)
        except DiffusionError:
            runtime.close()
            raise
    settings.feeds_dir.mkdir(parents=True, exist_ok=True)
    web = Web(
        settings=settings,
        engine=runtime.engine,
        templates=Jinja2Templates(directory=TEMPLATES_DIR),
        per_address=RateLimiter(settings.subscribe.limit_per_address),
        per_client=RateLimiter(settings.subscribe.limit_per_client),
        rules=runtime.rules,
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        if own:
            runtime.close()

    app = Starlette(
        routes=[
            Route("/", subscribe.subscribe_form, methods=["GET"]),
            Route("/subscribe", subscribe.subscribe_form, methods=["GET"]),
            Route("/subscribe", subscribe.subscribe, methods=["POST"]),
            Route("/confirm/{token}", confirm.confirm, methods=["GET", "POST"]),
            Route("/preferences/{token}", preferences.preferences, methods=["GET", "POST"]),
            Route("/unsubscribe/{token}", unsubscribe.unsubscribe, methods=["GET", "POST"]),
            Route("/archive/", archive.archive_index, methods=["GET"]),
            Route("/archive/{edition_id:int}", archive.archive_edition, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            *webhooks.ROUTES,
            # Items, news pages and the feed files (from memory, with ETags): web/pages.py.
            *pages.routes(),
        ],
        lifespan=lifespan,
        middleware=[
            Middleware(
                SecurityHeaders,
                templates=TEMPLATES_DIR,
                https=settings.base_url.startswith("https://"),
            ),
            Middleware(
                BodyLimit,
                max_bytes=settings.web.max_body_bytes,
                webhook_max_bytes=settings.web.webhook_max_body_bytes,
            ),
        ],
    )
    app.state.web = web
    app.state.feed_files = pages.FeedFiles(settings.feeds_dir)
    return app
