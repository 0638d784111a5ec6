"""The SMTP transport: a pool of reused connections to a relay, pipelined where it allows.

make_transport picks the pools (one per relay) or the maildir; send_one sends one message now.
Where and how to connect to a relay is in relayserver.py, the maildir in maildir.py, the
one-at-a-time transaction and the meaning of refusals in session.py, the number of connections
in concurrency.py, the pipelined replies in pipelining.py, the relays in relays.py.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from urllib.parse import urlsplit

import aiosmtplib
from aiosmtplib.status import SMTPStatus

from diffusion.config import Settings
from diffusion.deliver.concurrency import ConnectionLimit, too_many
from diffusion.deliver.maildir import MaildirTransport
from diffusion.deliver.message import check_address, serialise

# Outcome and Transport live in outcome.py (relays.py builds on them); importable from here too.
from diffusion.deliver.outcome import Outcome as Outcome
from diffusion.deliver.outcome import Transport as Transport
from diffusion.deliver.pipelining import Pipeline
from diffusion.deliver.relays import Relay, RelayPool
from diffusion.deliver.relayserver import SMTPServer, connection_fault
from diffusion.deliver.session import CONNECTION_ERRORS, refusal, session_fault, transaction
from diffusion.errors import DeliveryError

# Messages the send loop keeps handed to each connection: one waiting for its final reply while
# the next one's commands go out with the end of its data, and one more ready to follow, so that
# a pipelining connection waits about one round trip per message.
IN_FLIGHT = 3


@dataclass
class _Job:
    """One message handed to the connections, and where its outcomes go."""

    sender: str
    recipients: Sequence[str]
    data: bytes
    wire_ready: bool
    done: "asyncio.Future[dict[str, Outcome]]"
    rset: bool = False  # its commands start with RSET: one more reply to read first
    refused: dict[str, Outcome] = field(default_factory=dict)

    @property
    def accepted(self) -> list[str]:
        return [r for r in self.recipients if r not in self.refused]

    def finish(self, outcomes: dict[str, Outcome]) -> None:
        if not self.done.done():
            self.done.set_result(outcomes)

    def fail(self, outcome: Outcome) -> None:
        self.finish(dict.fromkeys(self.recipients, outcome))

    def abandon(self, exc: BaseException) -> None:
        if self.done.done():
            return
        if isinstance(exc, asyncio.CancelledError):
            self.done.cancel()
        else:
            self.done.set_exception(exc)


class _Link:
    """One connection of the pool: aiosmtplib's client, and its pipeline once it pipelines."""

    def __init__(self, server: SMTPServer) -> None:
        self.server = server
        self.client = server.client()
        self.pipe: Pipeline | None = None
        self.crowded = False  # the last connection attempt was refused as one too many

    @property
    def is_open(self) -> bool:
        return self.pipe.open if self.pipe is not None else self.client.is_connected

    async def open(self, pipelining: bool) -> Outcome | None:
        """Connected, greeted and logged in, or the relay's fault that prevented it."""
        if self.pipe is not None:
            if self.pipe.open:
                return None
            self.pipe.close()
            self.pipe, self.client = None, self.server.client()
        if self.client.is_connected:
            return None
        self.crowded = False
        try:
            await self.client.connect()
            if self.client.is_ehlo_or_helo_needed:
                try:
                    await self.client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await self.client.helo()
            if pipelining and self.client.supports_extension("pipelining"):
                self.pipe = Pipeline(self.client, self.server.timeout)
        except aiosmtplib.SMTPResponseException as exc:
            self.client.close()
            self.crowded = too_many(exc)
            return session_fault(exc)
        except (*CONNECTION_ERRORS, aiosmtplib.SMTPException) as exc:
            self.client.close()
            return connection_fault(exc, self.server)
        return None

    async def close(self) -> None:
        if self.pipe is not None:
            await self.pipe.quit()
            self.pipe, self.client = None, self.server.client()
        elif self.client.is_connected:
            try:
                await self.client.quit()
            except (aiosmtplib.SMTPException, OSError):
                self.client.close()


class SMTPTransport:
    """A pool of reused SMTP connections; a dropped one is reopened for the next message.

    Each connection is driven by one task taking messages from a shared queue. When the relay
    offers PIPELINING (and `pipelining` is on), a connection writes MAIL, RCPT and DATA in one
    group and the end of one message's data with the next message's commands, reading the
    replies in order; otherwise it sends one message at a time, waiting for each reply.
    """

    def __init__(self, server: SMTPServer, connections: int, *, pipelining: bool = True) -> None:
        self.server = server
        self.connections = connections
        self.pipelining = pipelining
        self.concurrency = connections * IN_FLIGHT
        self.limit = ConnectionLimit(connections)
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._links = [_Link(server) for _ in range(connections)]
        self._drivers: list[asyncio.Task[None]] = []

    async def deliver(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        wire_ready: bool = False,
        relay: str | None = None,
    ) -> dict[str, Outcome]:
        if not self._drivers:
            self._drivers = [asyncio.create_task(self._drive(link)) for link in self._links]
        job = _Job(sender, recipients, data, wire_ready, asyncio.get_running_loop().create_future())
        self._jobs.put_nowait(job)
        outcomes = await job.done
        if all(outcome.kind != "relay" for outcome in outcomes.values()):
            self.limit.answered()
        return outcomes

    def _open(self) -> int:
        return sum(link.is_open for link in self._links)

    def _ready(self) -> _Job | None:
        """The next waiting message, if one is waiting; those whose sender gave up are dropped."""
        while not self._jobs.empty():
            job = self._jobs.get_nowait()
            if not job.done.done():
                return job
        return None

    async def _drive(self, link: _Link) -> None:
        job: _Job | None = None
        holding = False  # one of the connections the limit allows now
        try:
            while True:
                job = None
                if holding and self.limit.over:
                    await link.close()
                    self.limit.release()
                    holding = False
                if not holding:
                    await self.limit.acquire()
                    holding = True
                job = await self._jobs.get()
                if job.done.done():
                    continue  # its sender was cancelled: never sent, so never recorded
                fault = await link.open(self.pipelining)
                if fault is not None and link.crowded and self.limit.crowded(self._open()):
                    self._jobs.put_nowait(job)  # one of the open connections sends it
                    self.limit.release()
                    holding = False
                elif fault is not None:
                    job.fail(fault)
                elif link.pipe is None:
                    job.finish(
                        await self._send(
                            link.client, job.sender, job.recipients, job.data, job.wire_ready
                        )
                    )
                else:
                    await self._pipelined(link.pipe, job)
        except BaseException as exc:
            # A bug, or close() cancelling: nobody waits for ever on a message this task held.
            if job is not None:
                job.abandon(exc)
            raise

    async def _pipelined(self, pipe: Pipeline, first: _Job) -> None:
        """Send `first` and every message that is waiting when its data goes, one group each.

        Replies come in the order of the commands: the final answer to the data of `sent`,
        then RSET (if any), MAIL, each RCPT and DATA of `job`.
        """
        sent: _Job | None = None  # its data written, its final answer not read yet
        job: _Job | None = None
        try:
            job, commands = self._commands(pipe, first)
            pipe.write(commands)
            while job is not None or sent is not None:
                if sent is not None:
                    sent.finish(self._delivered(pipe, sent, await pipe.reply()))
                    sent = None
                    if not pipe.open:  # the relay closed the session in its final answer
                        if job is not None:
                            job.fail(Outcome("relay", "the relay closed the session"))
                        return
                if job is None:
                    return
                if not await self._envelope_accepted(pipe, job):
                    job, commands = (
                        self._commands(pipe, self._ready()) if pipe.open else (None, b"")
                    )
                    pipe.write(commands)
                    continue
                # When no message waits, let the sender whose message was just answered hand
                # over its next one, whose commands then go in the same write as this one's
                # data: a relay that answers the end of data at once (smtp-sink does) would
                # otherwise send its next replies in a second small segment, which Nagle's
                # algorithm holds until our delayed ACK. When one waits, yielding would only
                # make this connection wait for every other task that is ready.
                if self._jobs.empty():
                    await asyncio.sleep(0)
                following, commands = self._commands(pipe, self._ready())
                sent, job = job, following  # held before the write: a fault there is theirs
                pipe.write(pipe.content(sent.data, sent.wire_ready, commands))
        except (*CONNECTION_ERRORS, aiosmtplib.SMTPException) as exc:
            fault = connection_fault(exc, self.server)
            for held in (sent, job):
                if held is not None:
                    held.fail(fault)
            pipe.close()
        except BaseException as exc:  # a bug, or close(): nobody waits for ever on these
            for held in (sent, job):
                if held is not None:
                    held.abandon(exc)
            raise

    def _commands(self, pipe: Pipeline, job: _Job | None) -> tuple[_Job | None, bytes]:
        """The commands before the data of `job`, or of the next message that can go."""
        while job is not None:
            try:
                commands = pipe.envelope(job.sender, job.recipients, len(job.data), pipe.dirty)
            except (ValueError, UnicodeEncodeError) as exc:
                job.fail(Outcome("permanent", f"an address cannot go on an SMTP line: {exc}"))
                job = self._ready()
                continue
            job.rset, pipe.dirty = pipe.dirty, False
            return job, commands
        return None, b""

    async def _envelope_accepted(self, pipe: Pipeline, job: _Job) -> bool:
        """Read the replies to the commands before the data; False when the data is not to go.

        A refused recipient ends as it does without pipelining; a refusal of the session
        (MAIL, a 421) closes the connection and leaves every recipient to the relay's fault.
        """
        if job.rset:
            reply = await pipe.reply()
            if reply.code == SMTPStatus.domain_unavailable:
                pipe.close()
                job.fail(refusal(reply.code, reply.message))
                return False
        mail = await pipe.reply()
        rcpts = [await pipe.reply() for _ in job.recipients]
        data = await pipe.reply()
        if mail.code != SMTPStatus.completed:
            pipe.close()
            job.fail(session_fault(aiosmtplib.SMTPSenderRefused(mail.code, mail.message, "")))
            return False
        for recipient, reply in zip(job.recipients, rcpts, strict=True):
            if reply.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
                job.refused[recipient] = refusal(reply.code, reply.message)
        closing = [o for o in job.refused.values() if o.kind == "relay"]
        if closing:
            pipe.close()
            job.finish({**dict.fromkeys(job.recipients, closing[0]), **job.refused})
            return False
        if data.code == SMTPStatus.start_input and job.accepted:
            return True
        pipe.dirty = True  # the server may hold the sender: RSET before the next MAIL
        if data.code == SMTPStatus.start_input:  # no recipient, yet the server awaits data
            pipe.close()
            job.finish(job.refused)
            return False
        outcome = session_fault(aiosmtplib.SMTPDataError(data.code, data.message))
        if job.accepted and outcome.kind == "relay":
            pipe.close()
        job.finish({**dict.fromkeys(job.recipients, outcome), **job.refused})
        return False

    def _delivered(
        self, pipe: Pipeline, job: _Job, reply: aiosmtplib.SMTPResponse
    ) -> dict[str, Outcome]:
        """The outcome per recipient from the final answer to a message's data."""
        if reply.code == SMTPStatus.completed:
            outcome = Outcome("sent", reply.message)
        else:
            outcome = session_fault(aiosmtplib.SMTPDataError(reply.code, reply.message))
            if outcome.kind == "relay":
                pipe.close()
        return {**dict.fromkeys(job.recipients, outcome), **job.refused}

    async def _send(
        self,
        client: aiosmtplib.SMTP,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        wire_ready: bool,
    ) -> dict[str, Outcome]:
        try:
            if not client.is_connected:
                await client.connect()
            refused, reply = await transaction(client, sender, recipients, data, wire_ready)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            outcomes = {err.recipient: refusal(err.code, err.message) for err in exc.recipients}
            if any(outcome.kind == "relay" for outcome in outcomes.values()):
                client.close()
            return {r: outcomes.get(r, Outcome("temporary", "refused")) for r in recipients}
        except aiosmtplib.SMTPResponseException as exc:
            outcome = session_fault(exc)
            if outcome.kind == "relay":
                client.close()
            return dict.fromkeys(recipients, outcome)
        except (*CONNECTION_ERRORS, aiosmtplib.SMTPException) as exc:
            # The connection, TLS or login went wrong: the relay's state, no reader's fault.
            client.close()
            return dict.fromkeys(recipients, connection_fault(exc, self.server))
        result = {r: Outcome("sent", reply) for r in recipients}
        for recipient, response in refused.items():
            result[recipient] = refusal(response.code, response.message)
        return result

    async def close(self) -> None:
        for task in self._drivers:
            task.cancel()
        await asyncio.gather(*self._drivers, return_exceptions=True)
        self._drivers = []
        for job in iter(self._ready, None):
            job.fail(Outcome("relay", "the connections were closed before it was sent"))
        await asyncio.gather(*(link.close() for link in self._links))


def make_transport(settings: Settings, connections: int | None = None) -> Transport:
    """SMTP when DIFFUSION_SMTP_URL is set (a pool per relay, and one per [[senders]] relay),
    else the maildir under var/outbox."""
    if not settings.smtp.url:
        return MaildirTransport(settings.outbox_dir)
    count = connections or settings.smtp.connections

    def relay(server: SMTPServer, weight: int = 1) -> Relay:
        transport = SMTPTransport(server, count, pipelining=settings.smtp.pipelining)
        return Relay(server.name, transport, weight)

    own = {
        sender.relay: relay(SMTPServer.from_url(sender.relay, settings, sender))
        for sender in settings.senders
        if sender.relay
    }
    return RelayPool(
        [relay(server, weight) for server, weight in SMTPServer.all_from_settings(settings)],
        failure_limit=settings.send.relay_failure_limit,
        rest_seconds=settings.send.relay_rest_seconds,
        own=own,
    )


def _recipients(message: EmailMessage) -> list[str]:
    fields = [str(value) for key in ("To", "Cc", "Bcc") for value in message.get_all(key, [])]
    return [check_address(address) for _, address in getaddresses(fields) if address]


async def send_one(settings: Settings, message: EmailMessage) -> None:
    """Send one transactional message (a confirmation...) now; DeliveryError if anyone missed it."""
    recipients = _recipients(message)
    if not recipients:
        raise DeliveryError(f"message {message['Subject']!r} has no recipient")
    sender = check_address(
        getaddresses([str(message["From"])])[0][1] if message["From"] else settings.from_address
    )
    if message["From"] is None:
        message["From"] = sender
    bcc = message.get_all("Bcc")
    del message["Bcc"]  # the envelope carries them; the header would tell everyone
    try:
        data = serialise(message, settings)
    finally:
        for value in bcc or []:
            message["Bcc"] = value
    transport = make_transport(settings, connections=1)
    try:
        outcomes = await transport.deliver(sender, recipients, data)
    finally:
        await transport.close()
    missed = {r: o.reply for r, o in outcomes.items() if o.kind != "sent"}
    if missed:
        url = urlsplit(settings.smtp.url or "")
        where = f"{url.hostname}:{url.port or ''}" if url.hostname else str(settings.outbox_dir)
        detail = "; ".join(f"{r}: {reply}" for r, reply in missed.items())
        raise DeliveryError(f"{where} did not accept the message for {detail}")
