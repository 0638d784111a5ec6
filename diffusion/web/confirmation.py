"""The message that asks an address to confirm a request (or says it is already held)."""

import logging
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from diffusion import i18n, links, subscriptions
from diffusion.config import Settings
from diffusion.errors import DeliveryError
from diffusion.models import Person
from diffusion.web.base import Web, person_id

log = logging.getLogger("diffusion.web")


@dataclass(frozen=True)
class Confirmation:
    """Who gets which message: a link to confirm, or (already subscribed) to preferences."""

    email: str
    language: str
    url: str
    already: bool = False


def confirmation_for(
    web: Web, person: Person, wish: subscriptions.Request, now: datetime
) -> Confirmation:
    """The confirmation of `wish`, mailed to the person: only it can apply the request."""
    url = links.confirm_url(web.settings, person_id(person), request=wish.claims(), issued_at=now)
    return Confirmation(person.email, wish.language or person.language, url)


def confirmation_message(settings: Settings, confirmation: Confirmation) -> EmailMessage:
    """The double opt-in message (or the "already subscribed" one), plain text, in the
    subscriber's language."""
    language = confirmation.language
    words = i18n.words(language)
    rtl = i18n.direction(language) == "rtl"
    fields = {
        "organisation": i18n.newsletter_name(settings, language),
        "email": i18n.isolate(confirmation.email) if rtl else confirmation.email,
        "days": settings.subscribe.confirm_token_days,
        "url": confirmation.url,
    }
    message = EmailMessage()
    message["From"] = formataddr((i18n.sender_name(settings, language), settings.from_address))
    message["To"] = confirmation.email
    if confirmation.already:
        subject = words.gettext("Your subscription to %(organisation)s", **fields)
        body = words.gettext(
            "Hello,\n\nSomeone, probably you, asked to subscribe %(email)s to the newsletter of "
            "%(organisation)s. This address already receives it.\n\nTo change what you "
            "receive, how often or in which language, open this link:\n\n%(url)s\n\nIf you "
            "did not ask, ignore this message: nothing changes.\n",
            **fields,
        )
    else:
        subject = words.gettext("Confirm your subscription to %(organisation)s", **fields)
        body = words.gettext(
            "Hello,\n\nSomeone, probably you, asked to receive the newsletter of "
            "%(organisation)s at %(email)s.\n\nTo confirm, open this link (valid for %(days)s "
            "days) and press the button:\n\n%(url)s\n\nIf you did not ask for it, ignore "
            "this message: nothing will be sent to you.\n",
            **fields,
        )
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.from_address.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    if settings.reply_to:
        message["Reply-To"] = settings.reply_to
    message.set_content(body)
    message["Content-Language"] = language  # after set_content, which drops Content-* headers
    return message


async def send_confirmation(settings: Settings, confirmation: Confirmation) -> None:
    from diffusion.deliver import send_one

    try:
        await send_one(settings, confirmation_message(settings, confirmation))
    except DeliveryError as exc:
        log.error("subscription message to %s not sent: %s", confirmation.email, exc)
