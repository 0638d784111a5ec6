"""Several relays: messages shared out by weight, moved off a failing one, back after a rest."""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from diffusion.deliver.outcome import Outcome, Transport
from diffusion.errors import ConfigError


@dataclass
class Relay:
    """One relay of smtp_url: its connections, its share, and how it has been doing."""

    name: str  # host:port
    transport: Transport
    weight: int = 1
    failures: int = 0  # relay faults in a row
    resting_until: float = 0.0
    fault: Outcome | None = None  # the last of them
    credit: float = 0.0  # smooth weighted round robin (as nginx shares upstreams)


class RelayPool:
    """The Transport over every relay: each message goes to the next relay by weight.

    A relay's own fault (connection, login, sender refused, 421...) sends the message on
    through another relay at once; after `failure_limit` of them in a row the relay rests for
    `rest_seconds`, then gets messages again, and rests again if it still fails. Only when no
    relay could take a message is the fault the send loop's, whose breaker then stops the send.
    """

    def __init__(
        self,
        relays: Sequence[Relay],
        *,
        failure_limit: int,
        rest_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        own: Mapping[str, Relay] | None = None,
    ) -> None:
        self.relays = list(relays)
        self.own = dict(own or {})  # a sender identity's relay by its URL: only its messages
        self.failure_limit = failure_limit
        self.rest_seconds = rest_seconds
        self.clock = clock
        everyone = [*self.relays, *self.own.values()]
        self.concurrency = sum(relay.transport.concurrency for relay in everyone)

    def pick(self, tried: set[str], own: str | None = None) -> Relay | None:
        """The relay owed the most messages by weight, among those not resting or tried; with
        `own`, that sender identity's relay or none."""
        now = self.clock()
        relays = self.relays if own is None else [self.own[own]]
        ready = [r for r in relays if r.name not in tried and r.resting_until <= now]
        if not ready:
            return None
        for relay in ready:
            relay.credit += relay.weight
        chosen = max(ready, key=lambda relay: relay.credit)
        chosen.credit -= sum(relay.weight for relay in ready)
        return chosen

    def observe(self, relay: Relay, fault: Outcome | None) -> None:
        if fault is None:
            relay.failures, relay.resting_until = 0, 0.0
            return
        relay.failures += 1
        relay.fault = fault
        if relay.failures >= self.failure_limit:
            relay.resting_until = self.clock() + self.rest_seconds

    async def deliver(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        wire_ready: bool = False,
        relay: str | None = None,
    ) -> dict[str, Outcome]:
        if relay is not None and relay not in self.own:
            raise ConfigError(f"senders: relay {relay!r} is not one of the configured relays")
        result: dict[str, Outcome] = {}
        pending = list(recipients)
        tried: set[str] = set()
        fault: Outcome | None = None
        relays = self.relays if relay is None else [self.own[relay]]
        while pending and (chosen := self.pick(tried, relay)) is not None:
            tried.add(chosen.name)
            outcomes = await chosen.transport.deliver(sender, pending, data, wire_ready=wire_ready)
            faults = [r for r in pending if outcomes[r].kind == "relay"]
            fault = outcomes[faults[0]] if faults else None
            self.observe(chosen, fault if len(faults) == len(pending) else None)
            for recipient in pending:
                if outcomes[recipient].kind != "relay":
                    result[recipient] = replace(outcomes[recipient], relay=chosen.name)
            pending = faults
        if pending:  # no relay took them: the last fault seen, or that of a resting relay
            if fault is None:
                fault = next((r.fault for r in relays if r.fault is not None), None)
            fault = fault or Outcome("relay", "every relay is resting after its faults")
            result.update(dict.fromkeys(pending, fault))
        return result

    async def close(self) -> None:
        for relay in [*self.relays, *self.own.values()]:
            await relay.transport.close()
