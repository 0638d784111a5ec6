"""One SMTP transaction at a time, and what each refusal of the relay means for a recipient."""

import ssl
from collections.abc import Sequence

import aiosmtplib
from aiosmtplib.status import SMTPStatus

from diffusion.deliver.outcome import Outcome

# Errors after which the connection cannot be trusted: drop it and reconnect for the next message.
CONNECTION_ERRORS = (
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPTimeoutError,
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPNotSupported,
    ConnectionError,
    TimeoutError,
    ssl.SSLError,
    OSError,
)


async def send_data(client: aiosmtplib.SMTP, data: bytes, wire_ready: bool) -> str:
    """DATA: the message, then the server's acceptance (its reply text).

    aiosmtplib's `data` rewrites every line ending and doubles every leading "." of each
    message it sends: two regular-expression passes that are two thirds of the CPU time of
    sending a 70 KB newsletter. A MessageTemplate settles both once per edition, so its
    messages are written as they are, with aiosmtplib's own command and reply calls.
    """
    if not wire_ready:
        return (await client.data(data)).message
    reply = await client.execute_command(b"DATA")
    if reply.code != SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    if client.protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    client.protocol.write(data)
    client.protocol.write(b".\r\n")
    reply = await client.protocol.read_response(timeout=client.timeout)
    if reply.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    return reply.message


async def transaction(
    client: aiosmtplib.SMTP,
    sender: str,
    recipients: Sequence[str],
    data: bytes,
    wire_ready: bool = False,
) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
    """MAIL, RCPT per recipient, DATA: what `sendmail` does, with the size taken as it is.

    Our messages are CRLF-terminated already; `sendmail` would normalise the whole message
    once more only to announce its SIZE, which costs as much as a third of a send.
    """
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()
    options = [f"SIZE={len(data)}"] if client.supports_extension("size") else []
    try:
        await client.mail(sender, options=options)
        refused: dict[str, aiosmtplib.SMTPResponse] = {}
        errors = []
        for recipient in recipients:
            try:
                await client.rcpt(recipient)
            except aiosmtplib.SMTPRecipientRefused as exc:
                errors.append(exc)
                refused[recipient] = aiosmtplib.SMTPResponse(exc.code, exc.message)
        if len(errors) == len(recipients):
            raise aiosmtplib.SMTPRecipientsRefused(errors)
        reply = await send_data(client, data, wire_ready)
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        try:  # leave the connection ready for the next message, as sendmail does
            await client.rset()
        except (ConnectionError, aiosmtplib.SMTPResponseException):
            pass
        raise
    return refused, reply


def refusal(code: int, text: str) -> Outcome:
    """A reply about one recipient (RCPT, or DATA for its message): 421 is the relay's."""
    if code == SMTPStatus.domain_unavailable:  # 421: the relay is closing the session
        return Outcome("relay", f"the relay closed the session: {code} {text}".strip())
    return Outcome.from_code(code, text)


def session_fault(exc: aiosmtplib.SMTPResponseException) -> Outcome:
    """A refusal of the session rather than of a recipient: EHLO, AUTH, MAIL FROM, 421."""
    reply = f"{exc.code} {exc.message}".strip()
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return Outcome("relay", f"the relay refused the sender: {reply}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return Outcome("relay", f"the relay refused the login: {reply}")
    if isinstance(exc, aiosmtplib.SMTPHeloError):
        return Outcome("relay", f"the relay refused the greeting (EHLO): {reply}")
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        return Outcome("relay", f"the relay refused the connection: {reply}")
    if isinstance(exc, aiosmtplib.SMTPDataError) and exc.code not in (
        SMTPStatus.domain_unavailable,
        -1,
    ):
        return Outcome.from_code(exc.code, exc.message)
    if exc.code in (SMTPStatus.domain_unavailable, -1):
        return Outcome("relay", f"the relay closed the session: {reply}")
    # Any other refusal outside RCPT and DATA (RSET, STARTTLS...) is about the session too.
    return Outcome("relay", f"the relay refused the session: {reply}")
