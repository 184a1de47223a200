#!/usr/bin/env python3
"""bench-link: a session whose video saturates a slow link, and typing
beside it.

wayrayd with the shipped server-session.pipeline and a headless
wayray-client with client-session.pipeline at 1280x720, QUIC, through an
in-process relay that delays the server-to-client direction by the round
trip and, from a moment on, caps it at a rate (a token bucket in front of
a bounded queue: what waits there is the bottleneck's queue, what does
not fit is dropped, as at a router).

The session is foot running a program that fills the upper 1280x576
pixels with new random black-and-white noise 30 times a second (sixel
images: pixels no glyph or move explains, so the session sends them as
video, and noise needs all the bitrate it is given) and echoes each typed
character on the terminal's last row. The client times each key to its
echo: the first frame whose last rows differ from the picture shown when
the key was sent (the noise above does not count).

Phases: the free link (the round trip only), then the cap. Reported: the
video bitrate the session chose (its statistics, every 2 s), the rate
reaching the client, the longest wait in the bottleneck's queue per
0.25 s after the cap (its peak, when it is back under 50 ms, and its
level from 3 s on), datagrams dropped there, and key -> echo latency on
the free link and under the cap (keys from 1 s after the cap on, while
the video adapts and then uses the link; median, p90).

Usage: bench-link [--cap BPS] [--rtt SECONDS] [--keys N]
"""
import argparse
import random
import shutil
import threading
import sys
import time

from wrbench import FOOT, Seat

NOISE_ECHO = r"""
import os, select, sys, time, tty
W, H, FPS = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
out = sys.stdout.buffer
fd = sys.stdin.fileno()
tty.setraw(fd)
ZERO = bytes(63 + (b & 63) for b in range(256))
ONE = bytes(63 + (~b & 63) for b in range(256))
head = b'\x1b[H\x1bP0;0;0q"1;1;%d;%d#0;2;0;0;0#1;2;100;100;100' % (W, H)
out.write(b"\x1b[?25l\x1b[2J")
typed = 0
nxt = time.monotonic()
while True:
    parts = [head]
    for _ in range(H // 6):
        r = os.urandom(W)
        parts += [b"#0", r.translate(ZERO), b"$#1", r.translate(ONE), b"-"]
    parts.append(b"\x1b\\")
    out.write(b"".join(parts))
    out.flush()
    nxt = max(nxt + 1.0 / FPS, time.monotonic() - 0.5)
    while True:
        wait = max(0.0, nxt - time.monotonic())
        if select.select([fd], [], [], wait)[0]:
            for ch in os.read(fd, 64):
                out.write(b"\x1b[999;%dH%c" % (typed % 100 + 1, ch if 33 <= ch < 127 else 35))
                typed += 1
            out.flush()
        if time.monotonic() >= nxt:
            break
"""

NOISE_H = 576
ECHO_REGION = "0 640 1280 80"


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


def keys(c, n):
    """Key -> echo latencies (ms) of @n keys, 0.25-0.35 s apart."""
    out = []
    for k in range(n):
        c.send("key-in %s %s" % (ECHO_REGION, "abcdefghij"[k % 10]))
        m = c.expect(r"^latency ([0-9.]+)", timeout=5)
        if m:
            out.append(float(m.group(1)))
        time.sleep(0.25 + random.random() * 0.1)
    return out


def main():
    ap = argparse.ArgumentParser(description="video saturating a capped link, and typing beside it")
    ap.add_argument("--cap", type=int, default=2000000, help="bits per second (default 2000000)")
    ap.add_argument("--rtt", type=float, default=0.04, help="seconds (default 0.04)")
    ap.add_argument("--queue", type=int, default=64 * 1024, help="bottleneck queue, bytes (default 65536)")
    ap.add_argument("--keys", type=int, default=40)
    ap.add_argument("--fps", type=int, default=60, help="noise frames per second (default 60)")
    args = ap.parse_args()
    random.seed(1)
    s = Seat("wayray-bench-link-")
    app = s.file("noise-echo.py", NOISE_ECHO)
    rate = lambda: s.stat(r"video-rate: wayray-video-rate, bitrate=\(guint64\)(\d+)")  # noqa: E731
    c = None
    try:
        c = s.start(FOOT + "python3 %s 1280 %d %d" % (app, NOISE_H, args.fps), delay_s=args.rtt, queue_bytes=args.queue)
        if c.expect(r"^first-frame", timeout=30) is None:
            sys.exit("bench-link: no first frame\n" + "\n".join(c.lines))
        time.sleep(8)                       # the video bitrate climbs to what the noise needs
        n0, t0 = s.relay.counts(), time.monotonic()
        free_keys = keys(c, args.keys)
        n1, t1 = s.relay.counts(), time.monotonic()
        free_rate = (n1[1] - n0[1]) * 8 / (t1 - t0)
        free_bitrate = rate()

        s.relay.set_rate(args.cap)
        s.relay.peak()
        t_cap = time.monotonic()
        trace, rates = [], []               # (seconds after the cap, longest wait ms), (seconds, bit/s)
        done = threading.Event()

        def watch():
            n = 0
            while not done.wait(0.25):
                peak, _ = s.relay.peak()
                trace.append((time.monotonic() - t_cap, peak * 1000))
                n += 1
                if n % 4 == 0:
                    rates.append((time.monotonic() - t_cap, rate()))
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(1.0)
        n0, t0 = s.relay.counts(), time.monotonic()
        capped_keys = keys(c, args.keys)
        n1, t1 = s.relay.counts(), time.monotonic()
        capped_rate = (n1[1] - n0[1]) * 8 / (t1 - t0)
        done.set()
        watcher.join()
        _, dropped = s.relay.peak()
        encoder = s.encoder()
    finally:
        if c:
            s.stop(c)
        shutil.rmtree(s.tmp, ignore_errors=True)

    peak_at, peak_ms = max(trace, key=lambda x: x[1])
    drained = next((at for at, ms in trace if at > peak_at and ms < 50), None)
    later = [ms for at, ms in trace if at >= 3.0]
    print("WayRay default pipelines, 1280x720, QUIC through a relay: %.0f ms round trip; then capped at %.1f Mbit/s "
          "with a %d kB queue" % (args.rtt * 1000, args.cap / 1e6, args.queue // 1024))
    print("H.264 encoder: %s" % encoder)
    print("session: foot, 1280x%d of noise at up to %d fps (sixel) above, keys echoed on the last row" % (NOISE_H, args.fps))
    print()
    print("free link:   video bitrate %s bit/s chosen; %.2f Mbit/s reached the client" % (free_bitrate, free_rate / 1e6))
    print("capped link: %.2f Mbit/s reached the client while typing (from 1 s after the cap)" % (capped_rate / 1e6))
    print("video bitrate chosen after the cap (the session's statistics, every 2 s): "
          + " ".join("%.0f s: %s" % (at, r) for at, r in rates))
    print()
    print("bottleneck queue after the cap, the longest wait in it per 0.25 s (s after the cap: ms):")
    for i in range(0, len(trace), 12):
        print("  " + " ".join("%.2f:%.0f" % x for x in trace[i:i + 12]))
    print("peak %.0f ms at %.2f s; first under 50 ms again %s; from 3 s on: median %.0f ms, max %.0f ms; "
          "datagrams dropped at the bottleneck: %d" % (
              peak_ms, peak_at, "%.2f s after the cap" % drained if drained is not None else "never",
              pct(later, 0.5), max(later) if later else float("nan"), dropped))
    print()
    for label, v in (("free link", free_keys), ("capped link", capped_keys)):
        print("key -> echo, %-11s: %2d keys, median %.1f ms, p90 %.1f ms, max %.1f ms (round trip %.0f ms)"
              % (label, len(v), pct(v, 0.5), pct(v, 0.9), max(v) if v else float("nan"), args.rtt * 1000))


if __name__ == "__main__":
    main()
