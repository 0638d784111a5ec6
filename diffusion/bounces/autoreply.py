"""Auto-replies (vacation, out of office) and ordinary replies: never counted as bounces."""

import re
from email.message import Message
from email.utils import parseaddr

from diffusion.bounces.dsn import one_line

# RFC 3834 and what common responders write instead of it.
_MARKER_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Vacation")
_PRECEDENCE = ("auto_reply", "auto-reply")
# Subjects of vacation notices in the languages of our readers (and a few servers' defaults).
_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|answer)|autoreply|auto:|out of (the )?office|"
    r"vacation|away from|absence|abwesen|automatische antwort|réponse automatique|"
    r"reponse automatique|absent|respuesta automática|respuesta automatica|fuera de la oficina|"
    r"автоответ|自动回复|自動回覆|رد تلقائي)",
    re.IGNORECASE,
)
_DAEMONS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailer|bounce)", re.IGNORECASE)


def sent_by_a_mail_system(message: Message) -> bool:
    """Whether the sender is a mail system (MAILER-DAEMON, postmaster...).

    Not the null Return-Path: RFC 3834 asks responders to send their vacation notices with one.
    """
    sender = parseaddr(one_line(message["From"]))[1]
    return bool(_DAEMONS.match(sender))


def auto_reply(message: Message) -> str | None:
    """Why this is an auto-reply, or None."""
    if sent_by_a_mail_system(message):
        return None  # a bounce may carry Auto-Submitted too: it is no vacation notice
    submitted = one_line(message["Auto-Submitted"]).lower()
    if submitted and submitted != "no":
        return f"auto-reply (Auto-Submitted: {submitted})"
    for header in _MARKER_HEADERS:
        if message[header]:
            return f"auto-reply ({header})"
    if one_line(message["Precedence"]).lower() in _PRECEDENCE:
        return "auto-reply (Precedence: auto_reply)"
    subject = one_line(message["Subject"])
    if _SUBJECT.match(subject):
        return f"auto-reply (subject {subject[:60]!r})"
    return None


def reply(message: Message) -> str | None:
    """Why this is a person's reply, or None."""
    if sent_by_a_mail_system(message):
        return None
    if message["In-Reply-To"] or message["References"]:
        return "a reply (In-Reply-To), not a delivery report"
    if re.match(r"^\s*(re|aw|sv|vs|réf|ref|回复|رد)\s*:", one_line(message["Subject"]), re.I):
        return "a reply (subject), not a delivery report"
    return None
