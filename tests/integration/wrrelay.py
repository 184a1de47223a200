"""A UDP relay on loopback for the end-to-end test and benchmarks: each
client address gets its own upstream socket towards the server; bytes are
counted both ways, and the server-to-client direction can be capped to a
rate (a token bucket; what does not fit waits in a bounded queue, and what
does not fit there is dropped, as at a bottleneck router) and delayed."""
import collections
import socket
import threading
import time


class Relay:
    def __init__(self, server_port, rate_bps=0, delay_s=0.0, queue_bytes=64 * 1024):
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
        self.queue = collections.deque()        # (due, data, addr)
        self.queued = 0
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
            with self.lock:
                self.bytes_down += len(data) + 28
                self.packets_down += 1
                if self.rate_bps == 0 and self.delay_s == 0 and not self.queue:
                    direct = True
                elif self.queued + len(data) > self.queue_bytes:
                    self.dropped += 1
                    continue
                else:
                    direct = False
                    self.queue.append((time.monotonic() + self.delay_s, data, addr))
                    self.queued += len(data)
                    self.wake.notify()
            if direct:
                try:
                    self.sock.sendto(data, addr)
                except OSError:
                    pass

    def _pacer(self):
        """Sends the queue at rate_bps, each datagram no earlier than due."""
        next_free = time.monotonic()
        while self.running:
            with self.lock:
                while self.running and not self.queue:
                    self.wake.wait(0.2)
                if not self.running:
                    return
                due, data, addr = self.queue[0]
                now = time.monotonic()
                start = max(now, due, next_free if self.rate_bps else now)
                if start > now:
                    self.wake.wait(min(start - now, 0.05))
                    continue
                self.queue.popleft()
                self.queued -= len(data)
                if self.rate_bps:
                    next_free = max(next_free, now) + (len(data) + 28) * 8.0 / self.rate_bps
            try:
                self.sock.sendto(data, addr)
            except OSError:
                pass

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
