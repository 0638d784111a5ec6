"""A latency proxy for benchmarks: 127.0.0.1 to 127.0.0.1, each direction's bytes held rtt/2.

    .venv/bin/python benchmarks/latencyproxy.py TARGET_PORT RTT_MS   # prints the port it listens on

It stands in for a relay 10 to 80 ms away. It is built on asyncio protocols, not streams: a chunk
read is queued with the time it is due, and one timer per direction writes every chunk that is
due, in order. An earlier version with a reading and a writing task per direction, a queue
between them and a sleep per chunk added about 4 ms to each 20 ms round trip with 16 connections
(its own task switches, on a machine whose two cores also run the sender and smtp-sink): the
benchmark then measured the proxy as much as the sender.

Bounded: at most MAX_CONNECTIONS connections; a direction holding more than HELD_BYTES stops
reading until it drains, as does one whose receiver does not read.
"""

import asyncio
import sys
from collections import deque
from collections.abc import Callable

MAX_CONNECTIONS = 256
HELD_BYTES = 4 * 1024 * 1024  # per direction: at most 2 GiB in all, in practice a few MB


class Leg(asyncio.Protocol):
    """One side of a proxied connection: what it reads, its peer writes `delay` seconds later."""

    def __init__(
        self,
        delay: float,
        on_made: Callable[["Leg"], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.delay = delay
        self.on_made = on_made
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.peer: Leg | None = None
        # Chunks with the time they are due; b"" ends the stream (EOF), None closes the peer.
        self.due: deque[tuple[float, bytes | None]] = deque()
        self.held = 0
        self.timer: asyncio.TimerHandle | None = None
        self.reading = True
        self.peer_full = False  # the peer's receiver is not reading: stop reading for it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.on_made is not None:
            self.on_made(self)

    def data_received(self, data: bytes) -> None:
        self._hold(data)
        self.held += len(data)
        self._flow()

    def eof_received(self) -> bool:
        self._hold(b"")
        return True  # half-closed: the other direction goes on until its own end

    def connection_lost(self, exc: Exception | None) -> None:
        self._hold(None)  # the peer closes once what was read before has gone
        if self.on_lost is not None:
            self.on_lost()

    def _hold(self, data: bytes | None) -> None:
        self.due.append((self.loop.time() + self.delay, data))
        if self.timer is None:
            self.timer = self.loop.call_at(self.due[0][0], self._give)

    def _give(self) -> None:
        """Write every chunk that is due to the peer, in the order they came."""
        self.timer = None
        peer = self.peer.transport if self.peer is not None else None
        if peer is None:  # the upstream connection is not made yet
            self.timer = self.loop.call_later(0.001, self._give)
            return
        now = self.loop.time()
        while self.due and self.due[0][0] <= now:
            _, data = self.due.popleft()
            if data is None:
                peer.close()  # after what it still buffers
            elif peer.is_closing():
                pass
            elif not data:
                try:
                    peer.write_eof()
                except OSError:  # its far end has gone meanwhile
                    peer.close()
            else:
                peer.write(data)
            self.held -= len(data or b"")
        if self.due:
            self.timer = self.loop.call_at(self.due[0][0], self._give)
        self._flow()

    def _flow(self) -> None:
        """Read while little is held and the peer's receiver keeps up; else wait."""
        if self.transport is None or self.transport.is_closing():
            return
        wanted = self.held <= HELD_BYTES and not self.peer_full
        if wanted != self.reading:
            self.reading = wanted
            (self.transport.resume_reading if wanted else self.transport.pause_reading)()

    # Called by asyncio on this leg's own transport: its receiver stopped or resumed reading,
    # so the peer, which writes here, stops or resumes reading what it would write.
    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.peer_full = True
            self.peer._flow()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.peer_full = False
            self.peer._flow()


class Proxy:
    def __init__(self, target: int, rtt: float) -> None:
        self.target = target
        self.delay = rtt / 2
        self.open = 0
        self.tasks: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references

    def accept(self) -> Leg:
        self.open += 1
        return Leg(self.delay, on_made=self._accepted, on_lost=self._closed)

    def _accepted(self, client: Leg) -> None:
        self.tasks.add(task := client.loop.create_task(self._connect(client)))
        task.add_done_callback(self.tasks.discard)

    def _closed(self) -> None:
        self.open -= 1

    async def _connect(self, client: Leg) -> None:
        assert client.transport is not None
        if self.open > MAX_CONNECTIONS:
            client.transport.close()
            return
        try:
            _, upstream = await asyncio.get_running_loop().create_connection(
                lambda: Leg(self.delay), "127.0.0.1", self.target
            )
        except OSError:
            client.transport.close()
            return
        client.peer, upstream.peer = upstream, client

    async def run(self) -> None:
        server = await asyncio.get_running_loop().create_server(self.accept, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(Proxy(int(sys.argv[1]), float(sys.argv[2]) / 1000).run())
