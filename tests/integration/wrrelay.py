"""A UDP relay on loopback for the end-to-end test and benchmarks: each
client address gets its own upstream socket towards the server; bytes are
counted both ways, and the server-to-client direction can be capped to a
rate (what the rate does not let through at once waits in a queue bounded
in bytes, and what does not fit there is dropped, as at a bottleneck
router), then delayed (the way to the client, unbounded). Datagrams can
also be lost at random (both ways, `loss`, a seeded generator) and delayed
on the way to the server (`delay_up_s`)."""
import heapq
import itertools
import random
import socket
import threading
import time


class Relay:
    def __init__(self, server_port, rate_bps=0, delay_s=0.0, queue_bytes=64 * 1024, loss=0.0, delay_up_s=0.0,
                 seed=1):
        self.server = ("127.0.0.1", server_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.up = {}
        self.lock = threading.Lock()
        self.bytes_up = self.bytes_down = self.dropped = 0
        self.packets_up = self.packets_down = 0
        self.rate_bps = rate_bps
        self.delay_s = delay_s
        self.queue_bytes = queue_bytes
        self.loss = loss
        self.delay_up_s = delay_up_s
        self.rng = random.Random(seed)
        self.lost = 0
        self.order = itertools.count()
        self.queue = []                         # heap of (due, n, data, socket, addr or None)
        self.next_free = 0.0                    # when the bottleneck is free again
        self.wait_peak = 0.0                    # the longest wait there since peak() last asked
        self.wake = threading.Condition(self.lock)
        self.running = True
        threading.Thread(target=self._from_clients, daemon=True).start()
        threading.Thread(target=self._pacer, daemon=True).start()

    def set_rate(self, rate_bps):
        """0: no cap."""
        with self.lock:
            self.rate_bps = rate_bps
            self.wake.notify()

    def _from_clients(self):
        self.sock.settimeout(0.2)
        while self.running:
            try:
                data, addr = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.bytes_up += len(data) + 28
                self.packets_up += 1
                u = self.up.get(addr)
                if u is None:
                    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    u.connect(self.server)
                    self.up[addr] = u
                    threading.Thread(target=self._from_server, args=(u, addr), daemon=True).start()
                if self.loss and self.rng.random() < self.loss:
                    self.lost += 1
                    continue
                if self.delay_up_s:
                    heapq.heappush(self.queue, (time.monotonic() + self.delay_up_s, next(self.order), data, u, None))
                    self.wake.notify()
                    continue
            try:
                u.send(data)
            except OSError:
                pass

    def _from_server(self, u, addr):
        u.settimeout(0.2)
        while self.running:
            try:
                data = u.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            size = len(data) + 28
            with self.lock:
                self.bytes_down += size
                self.packets_down += 1
                if self.loss and self.rng.random() < self.loss:
                    self.lost += 1
                    continue
                now = time.monotonic()
                if self.rate_bps == 0 and self.delay_s == 0 and not self.queue:
                    direct = True
                else:
                    direct = False
                    # The bottleneck: a datagram leaves once those before
                    # it have, at the rate; its wait is the queue's delay,
                    # and what would wait beyond queue_bytes is dropped.
                    backlog = max(0.0, self.next_free - now) if self.rate_bps else 0.0
                    if backlog * self.rate_bps / 8 + size > self.queue_bytes:
                        self.dropped += 1
                        continue
                    self.wait_peak = max(self.wait_peak, backlog)
                    leaves = now + backlog + (size * 8.0 / self.rate_bps if self.rate_bps else 0.0)
                    if self.rate_bps:
                        self.next_free = leaves
                    # then the way to the client: the delay, unbounded
                    heapq.heappush(self.queue, (leaves + self.delay_s, next(self.order), data, self.sock, addr))
                    self.wake.notify()
            if direct:
                try:
                    self.sock.sendto(data, addr)
                except OSError:
                    pass

    def _pacer(self):
        """Delivers each queued datagram when it is due."""
        while self.running:
            with self.lock:
                while self.running and not self.queue:
                    self.wake.wait(0.2)
                if not self.running:
                    return
                due, _, data, sock, addr = self.queue[0]
                now = time.monotonic()
                if due > now:
                    self.wake.wait(min(due - now, 0.05))
                    continue
                heapq.heappop(self.queue)
            try:
                if addr is None:
                    sock.send(data)
                else:
                    sock.sendto(data, addr)
            except OSError:
                pass

    def peak(self):
        """(the longest a datagram waited at the bottleneck since the last
        call, in seconds; datagrams dropped there so far)."""
        with self.lock:
            p, self.wait_peak = self.wait_peak, max(0.0, self.next_free - time.monotonic())
            return p, self.dropped

    def counts(self):
        """(bytes up, bytes down, datagrams up, datagrams down) so far."""
        with self.lock:
            return self.bytes_up, self.bytes_down, self.packets_up, self.packets_down

    def close(self):
        self.running = False
        with self.lock:
            self.wake.notify_all()
        self.sock.close()
        for u in self.up.values():
            u.close()
