"""Delivery: the outbox, message templates, SMTP and maildir transports."""

from diffusion.deliver.message import MessageTemplate
from diffusion.deliver.sender import SendSummary, send_pending
from diffusion.deliver.transport import Outcome, Transport, make_transport, send_one

__all__ = [
    "MessageTemplate",
    "Outcome",
    "SendSummary",
    "Transport",
    "make_transport",
    "send_one",
    "send_pending",
]
