#!/usr/bin/env python3
"""bench-content: what the default pipelines send for each kind of content,
counted on the wire.

wayrayd with the shipped server-session.pipeline and a headless
wayray-client with client-session.pipeline at 1280x720 on loopback, QUIC.
Between them an in-process UDP relay counts every datagram both ways (QUIC
headers, acknowledgements and the handshake included). Each workload runs
in a session of its own, with real applications:

* typing: foot, the client types one character every 50 ms (200 keys);
* scrolling: foot showing a program that prints 1000 lines/s;
* animation: weston-simple-shm (a 250x250 window animated at the display's
  rate; the kiosk policy leaves its size);
* video: gst-launch-1.0 playing a full-screen 1280x720 30 fps moving
  picture with a 160x120 noise block (videotestsrc through waylandsink);
* idle: foot with nothing happening.

Per workload, over its measured 10 s: bytes on the wire (and per key for
typing), frames the client received, frames that went through the video
encoder, and CPU seconds of the session's worker (the server side of
WayRay: compositor, classifier, encoders, transport) and of the client.
The daemon chooses the H.264 encoder as it does for users (x264enc here).

Usage: bench-content [--seconds 10] [--only NAME,...]
Run from the source tree with WAYRAY_BUILD_ROOT set, or through
`./dev bench content`. Runs as root (sessions of the invoking user,
allow-root) or as a user.
"""
import argparse
import shutil
import sys
import time

from wrbench import FOOT, Seat, cpu_seconds, descendants, tree_cpu

SCROLLER = r"""
import sys, time
t0 = time.monotonic()
n = 0
while True:
    n += 1
    sys.stdout.write("%08d the quick brown fox jumps over the lazy dog %s\n" % (n, "x" * (n % 40)))
    if n % 10 == 0:
        sys.stdout.flush()
        delay = t0 + n / 1000.0 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
"""

VIDEO = ("gst-launch-1.0 -q compositor name=mix sink_1::xpos=560 sink_1::ypos=300 "
         "! video/x-raw,width=1280,height=720,framerate=30/1 ! waylandsink fullscreen=true "
         "videotestsrc is-live=true pattern=smpte horizontal-speed=3 "
         "! video/x-raw,width=1280,height=720,framerate=30/1 ! mix.sink_0 "
         "videotestsrc is-live=true pattern=snow ! video/x-raw,width=160,height=120,framerate=30/1 ! mix.sink_1")

class Bench(Seat):
    def __init__(self, seconds, client_args):
        super().__init__("wayray-bench-content-", client_args)
        self.seconds = seconds

    def tiler_stats(self):
        return int(self.stat(r"frames-video=\(guint64\)(\d+)") or 0)

    def workload(self, name, command, settle, action=None):
        c = self.start(command)
        try:
            if c.expect(r"^first-frame", timeout=30) is None:
                sys.exit("bench-content: %s: no first frame\n%s" % (name, "\n".join(c.lines)))
            time.sleep(settle)              # the application is up and drawn
            worker = self.worker_pid()
            time.sleep(2.5)                 # the worker's statistics are reported every 2 s
            v0 = self.tiler_stats()
            c.send("stats")
            f0 = int(c.expect(r"^frames (\d+)").group(1))
            n0 = self.relay.counts()
            apps = descendants(worker)      # the session's programs
            w0, c0, a0 = cpu_seconds(worker), cpu_seconds(c.p.pid), tree_cpu(apps)
            t0 = time.monotonic()
            keys = 0
            if action:
                keys = action(c, t0 + self.seconds)
            else:
                time.sleep(self.seconds)
            elapsed = time.monotonic() - t0
            n1 = self.relay.counts()
            w1, c1, a1 = cpu_seconds(worker), cpu_seconds(c.p.pid), tree_cpu(apps)
            c.send("stats")
            f1 = int(c.expect(r"^frames (\d+)").group(1))
            time.sleep(2.5)
            v1 = self.tiler_stats()
            scale = self.seconds / elapsed
            up, down, pkt_up, pkt_down = ((b - a) * scale for a, b in zip(n0, n1))
            return {"name": name, "bytes": up + down, "down": down, "pkt_up": pkt_up, "pkt_down": pkt_down,
                    "frames": (f1 - f0) * scale,
                    "video": v1 - v0, "server": (w1 - w0) * scale, "client": (c1 - c0) * scale, "apps": (a1 - a0) * scale,
                    "keys": keys}
        finally:
            self.stop(c)

    def typing(self, c, until):
        keys = 0
        text = "the quick brown fox jumps over the lazy dog "
        nxt = time.monotonic()
        while nxt < until:
            c.send("type " + text[keys % len(text)])
            keys += 1
            nxt += 0.05
            time.sleep(max(0.0, nxt - time.monotonic()))
        return keys


def main():
    ap = argparse.ArgumentParser(description="bytes on the wire and CPU per kind of content")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--only", default="")
    ap.add_argument("--lossless", action="store_true",
                    help="the client decodes no H.264 (--video-decoder none): everything lossless")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    b = Bench(args.seconds, ["--video-decoder", "none"] if args.lossless else [])
    scroller = b.file("scroll.py", SCROLLER)
    plan = [
        ("typing", FOOT + "bash --norc --noprofile", 1.5, b.typing),
        ("scrolling", FOOT + "python3 " + scroller, 1.0, None),
        ("animation", "weston-simple-shm", 1.0, None),
        ("video", VIDEO, 2.0, None),
        ("idle", FOOT + "bash --norc --noprofile", 1.5, None),
    ]
    results = []
    encoder = "?"
    try:
        for name, command, settle, action in plan:
            if only and name not in only:
                continue
            r = b.workload(name, command, settle, action)
            results.append(r)
            print("%-10s done" % name, file=sys.stderr, flush=True)
        encoder = b.encoder()
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)
    print("WayRay default pipelines%s, 1280x720, loopback QUIC, %.0f s per workload; every datagram counted "
          "(+28 bytes IP/UDP)" % (" with a client that decodes no H.264 (lossless only)" if args.lossless else "",
                                  args.seconds))
    print("H.264 encoder: %s" % encoder)
    print("server CPU: the session worker (compositor, classifier, encoders, transport); client CPU: "
          "wayray-client --headless; apps CPU: the session's own programs (the terminal and what runs in it, "
          "weston-simple-shm, gst-launch-1.0)")
    print()
    print("bytes: both directions; to client: server to client only; per key: both directions / to client;")
    print("datagrams: to client / to server")
    print()
    print("%-10s %12s %12s %12s %13s %8s %8s %11s %11s %11s" % (
        "workload", "bytes", "to client", "per key", "datagrams", "frames", "video", "server CPU", "client CPU",
        "apps CPU"))
    for r in results:
        per_key = "%d / %d" % (r["bytes"] / r["keys"], r["down"] / r["keys"]) if r["keys"] else "-"
        print("%-10s %12d %12d %12s %13s %8d %8d %10.2fs %10.2fs %10.2fs" % (
            r["name"], r["bytes"], r["down"], per_key, "%d / %d" % (r["pkt_down"], r["pkt_up"]), r["frames"],
            r["video"], r["server"], r["client"], r["apps"]))


if __name__ == "__main__":
    main()
