#!/usr/bin/env python3
"""bench-e2e: wayrayd and wayray-client on loopback at 1920x1080.

* Time from a client presenting its token (front-door hello sent) to its
  first complete frame, for a new session and for a reattach.
* Time from a keystroke at the client (navigation event into its pipeline)
  to the next frame the client shows, with foot echoing the key.

Median and p99 over many runs. Usage: bench-e2e [REPEATS] (default 20 for
first frames, 10x that for keystrokes).
"""
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("WAYRAY_BUILD_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SOURCE = os.environ.get("WAYRAY_SOURCE_ROOT", os.path.join(BUILD, ".."))
WAYRAYD = os.path.join(BUILD, "daemon", "wayrayd")
WAYRAYCTL = os.path.join(BUILD, "daemon", "wayrayctl")
CLIENT = os.path.join(BUILD, "client", "wayray-client")
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
import wrclient  # noqa: E402


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


class Client(wrclient.Client):
    def __init__(self, env, port, token, size="1920x1080"):
        super().__init__(CLIENT, env, port, token, size, ["--headless"])

    def expect(self, pattern, timeout=20):
        m = super().expect(pattern, timeout)
        if not m:
            raise RuntimeError("client did not report %r" % pattern)
        return m

    def stop(self):
        self.kill()


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    tmp = tempfile.mkdtemp(prefix="wayray-bench-")
    run = os.path.join(tmp, "run")
    os.mkdir(run, 0o700)
    port = 33000 + os.getpid() % 500 * 2
    cfg = os.path.join(tmp, "seat.conf")
    with open(cfg, "w") as f:
        f.write("[daemon]\nlisten-address=127.0.0.1\nport=%d\nsession-ports=%d-%d\ntoken-store=%s/tokens\n"
                "control-socket=%s/ctl\n[session]\ncommand=foot --override=cursor.blink=no bash --norc --noprofile\n"
                % (port, port + 1, port + 40, tmp, run))
    env = dict(os.environ, XDG_RUNTIME_DIR=run, XDG_CONFIG_HOME=os.path.join(tmp, "config"),
               WAYRAY_PIPELINES_PATH=os.path.join(SOURCE, "pipelines"), WLR_RENDERER="pixman",
               WLR_BACKENDS="headless", WLR_LIBINPUT_NO_DEVICES="1")
    if "GST_PLUGIN_PATH" not in env:
        env["GST_PLUGIN_PATH"] = ":".join(os.path.join(BUILD, "gst", p) for p in ("wayray", "tiles", "quic"))
    daemon = subprocess.Popen([WAYRAYD, "--config", cfg], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        while "ready on port" not in daemon.stdout.readline():
            pass
        new, reattach, keys = [], [], []
        for i in range(repeats):
            token = subprocess.run([WAYRAYCTL, "--config", cfg, "token-add", "user%d" % i], env=env,
                                   capture_output=True, text=True).stdout.strip()
            c = Client(env, port, token)
            new.append(float(c.expect(r"^first-frame ([0-9.]+) new").group(1)))
            c.stop()
            c = Client(env, port, token)
            reattach.append(float(c.expect(r"^first-frame ([0-9.]+) reattach").group(1)))
            if i == 0:
                time.sleep(1.5)         # foot's prompt is up
                for k in range(repeats * 10):
                    c.send("wait-idle 30")
                    c.expect("^idle$")
                    c.send("key " + "abcdefghij"[k % 10])
                    keys.append(float(c.expect(r"^latency ([0-9.]+)").group(1)))
            c.stop()
            subprocess.run([WAYRAYCTL, "--config", cfg, "end", "%d" % (i + 1)], env=env, capture_output=True)

        print("wayrayd + wayray-client on loopback, 1920x1080, foot in the session\n")
        print("%-34s %8s %10s %10s %8s" % ("measure", "runs", "median ms", "p99 ms", "target"))
        print("%-34s %8d %10.1f %10.1f %8s" % ("token -> first frame, new session", len(new),
                                               statistics.median(new), pct(new, 0.99), ""))
        print("%-34s %8d %10.1f %10.1f %8s" % ("token -> first frame, reattach", len(reattach),
                                               statistics.median(reattach), pct(reattach, 0.99), "< 500"))
        print("%-34s %8d %10.2f %10.2f %8s" % ("keystroke -> changed client frame", len(keys),
                                               statistics.median(keys), pct(keys, 0.99), "< 10"))
        print("\nreattach / new (median): %.2fx" % (statistics.median(reattach) / statistics.median(new)))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
