#!/usr/bin/env python3
"""bench-desktop: what a window costs in a desktop session, and how fast a
session follows its client's screen.

wayrayd with the shipped server-session.pipeline, a headless wayray-client
at 1280x720 through the counting relay (QUIC on loopback), no sound.

Measured:
  * a 320x240 animation (the benchmarks' `animation` scene: videotestsrc
    pattern=ball at 30 fps through waylandsink) as the session command,
    with desktop=weston (a window of its own size among the desktop) and
    with the kiosk policy (the window blown up to the whole screen): bytes
    per second on the link (both ways, UDP payload + 28) and CPU seconds
    per second of the session's worker (compositing, tiling, encoding) and
    of the whole session (worker, desktop, application), over 10 s after
    5 s of warm-up.
  * key -> echo: a key typed at the client to the first picture that shows
    it (the terminal's echo), weston and kiosk, N keys each. Median, p90,
    max.
  * resize -> first picture at the new size at the client, desktop=sway
    and kiosk (weston 10 cannot resize its screen): the client asks for
    1024x768 and 1280x720 in turn, N times; from sending the request to
    its first picture of the new size, each after 400 ms of quiet (the
    session carries out such a request at once; only a burst waits for
    its 150 ms of settling). Median, p90, max.

Usage: bench-desktop [--resizes N] [--keys N]

sway refuses to run as root: run as root, the benchmark measures sway's
resizes as a throwaway Unix account it creates (and removes), running this
script again as that account with --only-resize sway.
"""
import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time

from wrbench import BUILD, Seat, descendants, tree_cpu, cpu_seconds

ANIMATION = ("gst-launch-1.0 -q videotestsrc pattern=ball is-live=true ! "
             "video/x-raw,width=320,height=240,framerate=30/1 ! waylandsink")
TERMINAL = "foot --override=cursor.blink=no --override=dpi-aware=no"


def animation(desktop):
    seat = Seat("wayray-bench-desk-")
    c = seat.start(ANIMATION, desktop=desktop, extra="sound=false\n")
    try:
        if not c.expect(r"^first-frame", 30):
            raise SystemExit("%s: no first frame" % desktop)
        time.sleep(5)
        worker = seat.worker_pid()
        tree = [worker] + descendants(worker)
        up0, down0, _, _ = seat.relay.counts()
        w0, t0, s0 = cpu_seconds(worker), tree_cpu(tree), time.monotonic()
        time.sleep(10)
        tree = [worker] + descendants(worker)
        up1, down1, _, _ = seat.relay.counts()
        w1, t1, s1 = cpu_seconds(worker), tree_cpu(tree), time.monotonic()
        secs = s1 - s0
        return ((up1 - up0 + down1 - down0) / secs, (w1 - w0) / secs, (t1 - t0) / secs)
    finally:
        seat.stop(c)


def resizes(desktop, n):
    seat = Seat("wayray-bench-resize-")
    c = seat.start(TERMINAL, desktop=desktop, extra="sound=false\n")
    times = []
    try:
        if not c.expect(r"^first-frame", 30):
            raise SystemExit("%s: no first frame" % desktop)
        time.sleep(3)
        for i in range(n):
            size = "1024x768" if i % 2 == 0 else "1280x720"
            c.send("resize " + size)
            m = c.expect(r"^picture %s ([0-9.]+)" % size, 10)
            if not m:
                raise SystemExit("%s: no picture at %s" % (desktop, size))
            times.append(float(m.group(1)))
            time.sleep(0.4)
    finally:
        seat.stop(c)
    return times


def keys(desktop, n):
    """Key -> its echo in the terminal, at the client (ms), n keys."""
    seat = Seat("wayray-bench-keys-")
    c = seat.start(TERMINAL + " bash --norc --noprofile", desktop=desktop, extra="sound=false\n")
    times = []
    try:
        if not c.expect(r"^first-frame", 30):
            raise SystemExit("%s: no first frame" % desktop)
        time.sleep(6)         # the desktop, then the terminal with the keyboard
        for i in range(n):
            # Below weston's panel (its clock), where weston put the
            # terminal; the kiosk's fills the screen.
            region = "0 40 1280 680" if desktop == "weston" else "0 0 1280 720"
            c.send("key-in %s %s" % (region, "abcdefghij"[i % 10]))
            m = c.expect(r"^latency ([0-9.]+)", 10)
            if m:
                times.append(float(m.group(1)))
            time.sleep(0.3)
    finally:
        seat.stop(c)
    return times


def resize_line(d, n):
    t = sorted(resizes(d, n))
    return "%-8s median %6.1f  p90 %6.1f  max %6.1f" % (d, statistics.median(t), t[int(len(t) * 0.9) - 1], t[-1])


def resize_as_user(d, n):
    """The resize figure of @d measured by this script run as a throwaway
    account (sway refuses root)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
    import accounts
    users, changed = {}, {}
    try:
        accounts.make_users(secrets.token_hex(3), "b", users)
        here = os.path.abspath(__file__)
        accounts.open_path([os.path.dirname(here), BUILD], changed)
        # The system's Python: another one may live in root's home.
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        out = subprocess.run(["runuser", "-u", users["b"].pw_name, "--", python, here, "--only-resize", d,
                              "--resizes", str(n)], capture_output=True, text=True, cwd="/tmp",
                             env=dict(os.environ, HOME=users["b"].pw_dir, TMPDIR="/tmp"))
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith(d)]
        return (lines[-1] + "  (as an unprivileged account)") if lines else \
            "%-8s failed as an unprivileged account: %s" % (d, (out.stderr or out.stdout)[-400:])
    finally:
        accounts.remove_users(users)
        for path, mode in changed.items():
            os.chmod(path, mode)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resizes", type=int, default=20)
    ap.add_argument("--keys", type=int, default=20)
    ap.add_argument("--only-resize", help="only the resize figure of this desktop")
    args = ap.parse_args()
    if args.only_resize:
        print(resize_line(args.only_resize, args.resizes))
        return
    print("bench-desktop: a 320x240 ball at 30 fps, client 1280x720, QUIC on loopback")
    rows = {d: animation(d) for d in ("weston", "kiosk")}
    print("%-8s %12s %14s %14s" % ("desktop", "link kB/s", "worker CPU %", "session CPU %"))
    for d, (bps, w, t) in rows.items():
        print("%-8s %12.1f %14.1f %14.1f" % (d, bps / 1000, w * 100, t * 100))
    wb, kb = rows["weston"][0], rows["kiosk"][0]
    print("kiosk / weston bytes: %.1fx; worker CPU %.1fx" % (kb / wb if wb else 0,
                                                              rows["kiosk"][1] / rows["weston"][1] if rows["weston"][1] else 0))
    print()
    print("key -> its echo in a terminal at the client (ms), %d keys each" % args.keys)
    for d in ("weston", "kiosk"):
        t = sorted(keys(d, args.keys))
        if not t:
            print("%-8s no echo seen" % d)
            continue
        print("%-8s median %6.1f  p90 %6.1f  max %6.1f  (%d of %d)" % (d, statistics.median(t), t[max(0, int(len(t) * 0.9) - 1)],
                                                                        t[-1], len(t), args.keys))
    print()
    print("resize -> first picture at the new size (ms), %d resizes each" % args.resizes)
    for d in ("sway", "kiosk"):
        if d == "sway" and os.getuid() == 0:
            print(resize_as_user(d, args.resizes))
            continue
        print(resize_line(d, args.resizes))


if __name__ == "__main__":
    main()
