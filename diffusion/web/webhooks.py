"""Provider webhooks under /webhooks/: Amazon SES (through SNS) and Mailgun.

A request whose signature does not verify gets 403 and changes nothing; a verified one is
applied once (its SNS MessageId or Mailgun token is the report key), then answered 200.
"""

import hashlib
import json
import logging
from datetime import UTC, datetime

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from diffusion.bounces import providers
from diffusion.bounces.events import Event
from diffusion.bounces.process import BounceReport, apply_once
from diffusion.web.base import Web, web_of

log = logging.getLogger("diffusion.webhooks")
# Larger bodies are no provider notification.
MAX_BODY = 256 * 1024


def _key(provider: str, identifier: str) -> str:
    return hashlib.sha256(f"{provider}:{identifier}".encode()).hexdigest()


def _apply(web: Web, key: str, events: list[Event], where: str) -> BounceReport:
    report = BounceReport(where)
    apply_once(web.engine, key, events, web.settings, report, where, now=datetime.now(UTC))
    for line in report.lines:
        log.info("%s", line)
    return report


async def _body(request: Request) -> bytes | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return body


def _refused(provider: str, reason: str) -> Response:
    log.warning("webhook %s refused: %s", provider, reason)
    return PlainTextResponse("signature refused\n", status_code=403)


async def ses(request: Request) -> Response:
    """SNS posts SES bounce and complaint notifications, and its subscription confirmation."""
    web = web_of(request)
    body = await _body(request)
    if body is None:
        return PlainTextResponse("too large\n", status_code=413)
    try:
        envelope = providers.parse_json(body)
        await run_in_threadpool(providers.verify_sns, envelope, web.settings)
    except providers.BadSignature as exc:
        return _refused("ses", str(exc))
    kind = envelope.get("Type")
    if kind == "SubscriptionConfirmation":
        url = providers.subscribe_url(envelope)
        if url is None:
            return _refused("ses", "SubscribeURL is not on the certificate's host")
        try:
            async with httpx.AsyncClient(timeout=web.settings.collect.fetch_timeout) as client:
                (await client.get(url)).raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("webhook ses: could not confirm the subscription: %s", exc)
            return PlainTextResponse("confirmation failed\n", status_code=502)
        return PlainTextResponse("subscribed\n")
    if kind != "Notification":
        return PlainTextResponse("ignored\n")
    try:
        message = json.loads(str(envelope.get("Message", "")))
    except ValueError:
        return PlainTextResponse("not an SES notification\n", status_code=400)
    if not isinstance(message, dict):
        return PlainTextResponse("not an SES notification\n", status_code=400)
    events = providers.ses_events(message, web.settings, web.secret)
    if events:
        key = _key("sns", str(envelope.get("MessageId", "")))
        await run_in_threadpool(_apply, web, key, events, "webhook ses")
    return PlainTextResponse("ok\n")


async def mailgun(request: Request) -> Response:
    """Mailgun posts one signed event per request (failed, complained, unsubscribed...)."""
    web = web_of(request)
    body = await _body(request)
    if body is None:
        return PlainTextResponse("too large\n", status_code=413)
    try:
        payload = providers.parse_json(body)
        signature = payload.get("signature")
        token = providers.verify_mailgun(
            signature if isinstance(signature, dict) else {}, web.settings, now=datetime.now(UTC)
        )
    except providers.BadSignature as exc:
        return _refused("mailgun", str(exc))
    data = payload.get("event-data")
    events = providers.mailgun_events(
        data if isinstance(data, dict) else {}, web.settings, web.secret
    )
    if events:
        await run_in_threadpool(_apply, web, _key("mailgun", token), events, "webhook mailgun")
    return PlainTextResponse("ok\n")


ROUTES = [
    Route("/webhooks/ses", ses, methods=["POST"]),
    Route("/webhooks/mailgun", mailgun, methods=["POST"]),
]
