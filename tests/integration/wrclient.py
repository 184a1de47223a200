"""A headless wayray-client driven through its stdin, for the end-to-end
test and the end-to-end benchmark."""
import os
import re
import select
import signal
import subprocess
import time


class Client:
    def __init__(self, exe, env, port, token, size, extra=(), stdin=True, stderr=None):
        """@token None: the client logs in otherwise (--smartcard in @extra)."""
        self.p = subprocess.Popen(
            [exe, "127.0.0.1:%d" % port] + (["--token", token] if token is not None else []) + ["--size", size]
            + list(extra),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=stderr or subprocess.DEVNULL, env=env)
        self.lines = []
        self.buf = b""

    def send(self, cmd):
        self.p.stdin.write((cmd + "\n").encode())
        self.p.stdin.flush()

    def _line(self, deadline):
        """The next line of output, or None at the deadline or at its end.
        Reads the pipe itself: a buffered reader would hide lines from
        select()."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if not r:
                return None
            chunk = os.read(self.p.stdout.fileno(), 4096)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        line = line.decode(errors="replace")
        self.lines.append(line)
        return line

    def expect(self, pattern, timeout=15):
        """The first match of @pattern in the lines still to come, or None."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            line = self._line(deadline)
            if line is None:
                return None
            m = rx.search(line)
            if m:
                return m

    def snapshot(self, path):
        self.send("wait-idle 600")
        if not self.expect("^idle$"):
            return False
        self.send("snapshot " + path)
        return bool(self.expect("^snapshot written$"))

    def kill(self, sig=signal.SIGKILL):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        self.p.wait(timeout=10)

    def quit(self):
        if self.p.poll() is None:
            try:
                if self.p.stdin:
                    self.send("quit")
                else:
                    self.p.send_signal(signal.SIGTERM)
            except BrokenPipeError:
                pass
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


# --- helpers shared by the integration tests ----------------------------------

def wait_for(pred, timeout=10, step=0.1):
    """True as soon as pred() is, False after @timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def parse_listing(text):
    """`wayrayctl list` output as a list of dicts (the id under "id")."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        fields["id"] = line.split()[0]
        rows.append(fields)
    return rows


def read_ppm(path):
    """(width, height, RGB bytes) of a binary PPM, or None."""
    with open(path, "rb") as f:
        data = f.read()
    m = re.match(rb"P6\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), data[m.end():]


def same_picture(a, b):
    """(True, "") when PPM files @a and @b hold the same picture, else
    (False, why)."""
    pa, pb = read_ppm(a), read_ppm(b)
    if not pa or not pb:
        return False, "unreadable PPM"
    if pa[:2] != pb[:2]:
        return False, "sizes differ: %dx%d vs %dx%d" % (pa[0], pa[1], pb[0], pb[1])
    if pa[2] != pb[2]:
        diff = sum(1 for i in range(0, len(pa[2]), 3) if pa[2][i:i + 3] != pb[2][i:i + 3])
        return False, "%d pixels differ" % diff
    return True, ""
