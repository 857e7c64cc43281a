"""A TCP proxy that injects real network faults between a gRPC client and
the daemon (standard library only).

Client-to-daemon bytes always pass unchanged. Daemon-to-client bytes pass
unchanged too, except on a connection chosen to fail: there the proxy reads
the HTTP/2 frames (RFC 9113 section 4.1: a 9-byte header with a 24-bit
length, type, flags and stream id) and, once the fault's condition is met,
cuts both sides of that connection. The condition counts frames and gRPC
messages, never time, so a test that uses it is deterministic. A cut is a
reset, which can also destroy what the client has received but not yet
read; so the proxy cuts only when nothing it passed to the client matters
any more:

- ``"response"``: hold back the first response (the HEADERS frame of a
  stream, and everything after it) and cut the connection as soon as its
  gRPC message has arrived from the daemon. The daemon has then answered,
  so the call took effect, but the client never sees the answer. The held
  message is kept in ``dropped`` for the test to inspect.
- ``("messages", n)``: pass whole frames until at least ``n`` gRPC messages
  have gone to the client (``passed`` says how many), then hold back
  everything after them and set ``holding``. The test waits until the
  client has taken those messages, and then cuts the connection with
  ``cut()``.
"""
import socket
import struct
import threading

FRAME_DATA = 0x0
FRAME_HEADERS = 0x1
FLAG_PADDED = 0x8
FRAME_HEADER_SIZE = 9


class _Frames:
    """Splits a byte stream into HTTP/2 frames: ``feed`` bytes, get complete frames."""

    def __init__(self):
        self._buf = b""

    def feed(self, data):
        self._buf += data
        frames = []
        while len(self._buf) >= FRAME_HEADER_SIZE:
            length = int.from_bytes(self._buf[:3], "big")
            if len(self._buf) < FRAME_HEADER_SIZE + length:
                break
            raw = self._buf[:FRAME_HEADER_SIZE + length]
            self._buf = self._buf[FRAME_HEADER_SIZE + length:]
            ftype, flags = raw[3], raw[4]
            stream = struct.unpack(">I", raw[5:9])[0] & 0x7FFFFFFF
            payload = raw[FRAME_HEADER_SIZE:]
            if ftype == FRAME_DATA and flags & FLAG_PADDED:
                pad = payload[0]
                payload = payload[1:len(payload) - pad]
            frames.append((ftype, stream, payload, raw))
        return frames


class _Messages:
    """Counts gRPC messages (a 5-byte prefix: compressed flag, 32-bit length) in DATA payloads."""

    def __init__(self):
        self._buf = b""
        self.complete = []

    def feed(self, payload):
        self._buf += payload
        while len(self._buf) >= 5:
            length = int.from_bytes(self._buf[1:5], "big")
            if len(self._buf) < 5 + length:
                break
            self.complete.append(self._buf[5:5 + length])
            self._buf = self._buf[5 + length:]


class FaultProxy:
    """Listens on 127.0.0.1; ``address`` is what the client dials.

    Args:
        upstream: ``host:port`` of the daemon.
        fault: ``"response"`` or ``("messages", n)`` (see the module doc).
        fail_connections: which connections (1 = the first accepted) get the
            fault; the others are forwarded unchanged.

    Attributes:
        connections: how many client connections were accepted.
        cuts: how many connections the fault cut.
        dropped: the gRPC messages held back by ``"response"`` faults (bytes).
        holding: set once a ``("messages", n)`` fault holds a connection.
        passed: how many gRPC messages went to the client before the hold.
    """

    def __init__(self, upstream, fault, fail_connections=(1,)):
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._fault = fault
        self._fail = set(fail_connections)
        self._lock = threading.Lock()
        self._sockets = []
        self._threads = []
        self._closed = False
        self.connections = 0
        self.cuts = 0
        self.dropped = []
        self.holding = threading.Event()
        self.passed = 0
        self._held = []  # (daemon, client) sockets of connections that wait for cut()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self._listener.getsockname()[1]
        self._spawn(self._accept)

    def _spawn(self, target, *args):
        t = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(t)
        t.start()

    def _track(self, *socks):
        with self._lock:
            self._sockets.extend(socks)

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                daemon = socket.create_connection(self._upstream)
            except OSError:
                client.close()
                continue
            for s in (client, daemon):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._closed:
                    client.close()
                    daemon.close()
                    return
                self.connections += 1
                n = self.connections
            self._track(client, daemon)
            faulty = n in self._fail
            self._spawn(self._pump, client, daemon)
            self._spawn(self._pump_faulty if faulty else self._pump, daemon, client)

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(src, dst)

    def _pump_faulty(self, daemon, client):
        frames, messages = _Frames(), _Messages()
        holding = None  # the stream whose response is held back ("response")
        held = False  # the connection is left open for cut() ("messages")
        try:
            while True:
                data = daemon.recv(65536)
                if not data:
                    break
                for ftype, stream, payload, raw in frames.feed(data):
                    if self._fault == "response":
                        if holding is None and ftype == FRAME_HEADERS and stream != 0:
                            holding = stream
                        if holding is None:
                            client.sendall(raw)
                            continue
                        if ftype == FRAME_DATA and stream == holding:
                            messages.feed(payload)
                            if messages.complete:
                                with self._lock:
                                    self.dropped.append(messages.complete[0])
                                self._cut(daemon, client)
                                return
                    else:
                        _, wanted = self._fault
                        client.sendall(raw)
                        if ftype == FRAME_DATA and stream != 0:
                            messages.feed(payload)
                            if len(messages.complete) >= wanted:
                                # Reads stop here: the daemon's later bytes wait in the sockets.
                                with self._lock:
                                    self.passed = len(messages.complete)
                                    self._held.append((daemon, client))
                                held = True
                                self.holding.set()
                                return
        except OSError:
            pass
        finally:
            if not held:
                _shutdown(daemon, client)

    def cut(self):
        """Cuts the connection a ``("messages", n)`` fault holds."""
        with self._lock:
            held, self._held = self._held, []
        if not held:
            raise AssertionError("cut(): no connection is held; wait for `holding` first")
        for socks in held:
            self._cut(*socks)

    def _cut(self, *socks):
        # SO_LINGER 0: close with a RST, as a failed network path or a killed
        # peer would, rather than an orderly FIN.
        # SHUT_RD first wakes the other direction's thread, blocked in recv.
        for s in socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RD)
            except OSError:
                pass
            s.close()
        with self._lock:
            self.cuts += 1

    def close(self):
        with self._lock:
            self._closed = True
            socks, threads = list(self._sockets), list(self._threads)
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self._listener.close()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads:
            t.join(timeout=5)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _shutdown(*socks):
    """Ends both directions of each socket; one already closed is fine."""
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
