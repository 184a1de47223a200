#!/usr/bin/env python3
"""bench-storm: a login storm at one wayrayd, and how fast its front door
answers hellos.

* Login storm: N clients (N = 8, 16, 32 by default) started at once, each
  with a token of its own mapped to an account of its own, each a NEW
  session (the session starter runs PAM, the worker, compositor and foot
  run as the account). Per client: the time from its first hello (its
  "state connecting" line) to its first complete frame, and how many clients
  had no frame within the deadline (60 s). Between storms every session is
  ended, so each storm starts from none.
* Door hellos answered per second: K raw QUIC peers (gst-launch-1.0 with the
  build's quicsink/quicsrc, the way tests/integration/e2e.py sends raw
  hellos) each send hellos with an unknown token, the next as soon as the
  answer to the previous has come back, for a few seconds (the daemon's
  failed-login limit is off for this: max-failed-logins=0).

The machinery (accounts, PAM service, seat configuration, wayrayd as root,
tokens, headless clients, the clean-up also on failure) is bench-e2e's,
imported from it. Run as root: `sudo bench/run storm` (or `./dev bench
storm`).

Usage: bench-storm [--sizes 8,16,32] [--deadline 60] [--peers 1,16]
                   [--hello-seconds 5] [--only storm|hellos]
"""
import argparse
import importlib.machinery
import importlib.util
import os
import re
import secrets
import shutil
import select
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load_bench_e2e():
    """bench-e2e as a module: its installed copy next to this one
    (build/bench/e2e/bench-e2e), or bench-e2e.py in the source tree (then
    WAYRAY_BUILD_ROOT names the build tree)."""
    for name in ("bench-e2e", "bench-e2e.py"):
        path = os.path.join(HERE, name)
        if os.path.exists(path):
            loader = importlib.machinery.SourceFileLoader("bench_e2e", path)
            spec = importlib.util.spec_from_file_location("bench_e2e", path, loader=loader)
            mod = importlib.util.module_from_spec(spec)
            sys.modules["bench_e2e"] = mod
            loader.exec_module(mod)
            return mod
    sys.exit("bench-storm: bench-e2e is not next to %s" % HERE)


e2e = load_bench_e2e()
wrclient = e2e.wrclient
Fail = e2e.Fail
note = e2e.note

TARGET_N = 16
TARGET_MS = 3000
HELLO = ("hello, version=(int)2, nonce=(string)%s, token-id=(string)%s, client-nonce=(string)%s, width=(int)64, "
         "height=(int)64, client=(string)%s;")
ANSWER = re.compile(rb"(refused|welcome), nonce=\(string\)\"?([A-Za-z0-9]+)")


def tail(path, n=4):
    try:
        with open(path, errors="replace") as f:
            lines = [l.rstrip() for l in f if l.strip()]
    except OSError:
        return []
    return lines[-n:]


def reasons(lines, who):
    """{refusal reason (numbers as N): count} of the daemon's "refused WHO:
    REASON" lines."""
    out = {}
    for text in lines:
        m = re.search(r"^refused %s: (.*)" % who, text)
        if m:
            r = re.sub(r"\d+", "N", m.group(1))
            out[r] = out.get(r, 0) + 1
    return out


def gst_launch_env(env):
    """The integration test's environment for gst-launch-1.0 with this
    build's plugins (a sanitizer runtime preloaded where needed)."""
    os.environ.setdefault("WAYRAY_BUILD_ROOT", e2e.BUILD)
    os.environ.setdefault("WAYRAY_SOURCE_ROOT", e2e.SOURCE)
    try:
        import e2e as integration      # tests/integration/e2e.py, on bench-e2e's sys.path
        return integration.gst_launch_env(env)
    except Exception:
        return env


class StormClient(e2e.Client):
    """bench-e2e's headless client, its stderr kept in a file."""

    def __init__(self, env, port, token, name, errpath):
        self.errpath = errpath
        self.name = name
        self.started = time.monotonic()
        with open(errpath, "wb") as err:
            wrclient.Client.__init__(self, e2e.CLIENT, env, port, token, "1920x1080",
                                     ["--headless", "--name", name], stderr=err)
        self.stamps = []
        self.frame = None           # (line's arrival time, client's own ms, "new"/"reattach")

    def wait_frame(self, deadline):
        try:
            m, t = self.expect(r"^first-frame ([0-9.]+) (\w+)", max(0.0, deadline - time.monotonic()))
            self.frame = (t, float(m.group(1)), m.group(2))
        except Fail:
            pass

    def hellos(self):
        return sum(1 for l in self.lines if l.startswith("state connecting"))

    def why_not(self):
        rc = self.p.poll()
        said = self.lines[-1] if self.lines else "(nothing)"
        err = tail(self.errpath)
        return "%s; last said: %s%s" % ("still running" if rc is None else "exit code %d" % rc, said,
                                        "; stderr: " + " | ".join(err) if err else "")


class HelloPeer(threading.Thread):
    """A raw front-door peer: gst-launch-1.0 sending the hellos written to
    its stdin on a hello stream and printing the door's answers. Sends a
    hello with an unknown token, waits for the answer carrying its nonce
    (2 s at most), sends the next; starts a new peer process when this one
    ended (its connection replaced or lost) or got no answer."""

    def __init__(self, bench, idx, stop_at, env):
        super().__init__(daemon=True)
        self.b, self.idx, self.stop_at, self.env = bench, idx, stop_at, env
        self.p = None
        self.errpath = os.path.join(bench.tmp, "peer-%d.err" % idx)
        self.sent = self.unanswered = self.foreign = self.starts = 0
        self.answers = []           # (time the answer came, ms after its hello)
        self.exits = []             # (exit code, last stderr line) of peer processes that ended by themselves
        self.token = secrets.token_hex(16)     # an unknown token's id
        self.seq = 0

    def spawn(self):
        cmd = ["gst-launch-1.0", "-q", "fdsrc", "fd=0", "!", "application/x-wayray-control,version=(int)1", "!",
               "n.hello", "quicsink", "name=n", "mode=client", "host=127.0.0.1", "port=%d" % self.b.port,
               "quicsrc", "name=r", "mode=client", "host=127.0.0.1", "port=%d" % self.b.port,
               "r.welcome", "!", "fdsink", "fd=1", "sync=false"]
        with open(self.errpath, "wb") as err:
            self.p = subprocess.Popen(cmd, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        self.starts += 1
        self.mine = {}              # nonce -> when sent, for this process's hellos
        self.buf = b""

    def end_peer(self):
        if self.p is None:
            return
        if self.p.poll() is None:
            self.p.kill()
        else:
            lines = tail(self.errpath, 10)
            errors = [l for l in lines if l.startswith("ERROR")]
            self.exits.append((self.p.returncode, (errors or lines or [""])[-1]))
        self.p.wait()
        for f in (self.p.stdin, self.p.stdout):
            try:
                f.close()
            except OSError:
                pass
        self.p = None

    def run(self):
        try:
            while time.monotonic() < self.stop_at:
                if self.p is None:
                    self.spawn()
                self.seq += 1
                nonce = "p%dx%d" % (self.idx, self.seq)
                try:
                    os.write(self.p.stdin.fileno(), (HELLO % (nonce, self.token, secrets.token_hex(18),
                                                                "storm-peer-%d" % self.idx)).encode())
                except OSError:
                    self.end_peer()
                    continue
                sent = time.monotonic()
                self.mine[nonce] = sent
                self.sent += 1
                if not self.await_answer(nonce, min(self.stop_at, sent + 2.0)):
                    self.unanswered += 1
                    self.end_peer()
        finally:
            self.end_peer()

    def await_answer(self, nonce, deadline):
        fd = self.p.stdout.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                return False
            data = os.read(fd, 65536)
            if not data:
                return False
            now = time.monotonic()
            self.buf += data
            got, end = False, 0
            for m in ANSWER.finditer(self.buf):
                end = m.end()
                n = m.group(2).decode()
                if n in self.mine:
                    self.answers.append((now, (now - self.mine.pop(n)) * 1000))
                    got = got or n == nonce
                else:
                    self.foreign += 1
            self.buf = self.buf[end:]
            if got:
                return True

    def stop(self):
        self.stop_at = 0
        self.join(timeout=10)
        self.end_peer()


class Storm:
    def __init__(self, args):
        self.args = args
        self.b = e2e.Bench()
        self.peers = []
        self.storms = 0

    def configure(self):
        """bench-e2e's seat configuration, with room for the largest storm:
        max-sessions above it and a session-ports range of 49 ports (the
        benchmark's port block)."""
        with open(self.b.cfg) as f:
            text = f.read()
        text = re.sub(r"(?m)^session-ports=.*$", "session-ports=%d-%d" % (self.b.port + 1, self.b.port + 49), text)
        # The hello measurement sends unknown tokens from one address as fast
        # as they are answered: with the failed-login limit off, it measures
        # the front door, not the limit (which refuses after 10).
        text = text.replace("[daemon]\n", "[daemon]\nmax-sessions=%d\nmax-failed-logins=0\n"
                            % (max(self.args.sizes) * 2), 1)
        with open(self.b.cfg, "w") as f:
            f.write(text)

    def end_all(self, timeout=120):
        """Ends every session and waits until their starters are gone."""
        b = self.b
        for r in b.sessions():
            b.ctl("end", r["id"])

        def none_left():
            return not b.sessions() and not any(e2e.alive(p) for p in b.starters)
        if not e2e.wait_for(none_left, timeout=timeout, step=0.2):
            raise Fail("sessions did not all end within %d s: %s" % (timeout, b.sessions()))

    # --- the login storm ----------------------------------------------------------------

    def warm(self):
        """The first session of each account, one at a time (what an account
        caches in its home is made then): the figure of a new session alone."""
        b = self.b
        note("the first session of each of the %d accounts, one at a time" % len(b.users))
        out = None
        for k, pw in enumerate(b.users):
            name = "first-%d" % k
            res = self.launch([(name, b.token(name, pw))], 120, "first")
            self.end_all()
            if out is None:
                out = res
            else:
                for key in ("from_hello", "from_start", "client_ms", "failed", "hellos"):
                    out[key] += res[key]
                out["reattach"] += res["reattach"]
        return out

    def storm(self, n, deadline_s):
        b = self.b
        self.storms += 1
        tag = "storm%d" % self.storms
        tokens = [("%s-%d" % (tag, k), b.users[k]) for k in range(n)]
        tokens = [(name, b.token(name, pw)) for name, pw in tokens]
        time.sleep(1.0)             # the previous storm's teardown is over
        note("storm of %d new sessions" % n)
        res = self.launch(tokens, deadline_s, tag)
        res["n"] = n
        self.end_all()
        return res

    def launch(self, tokens, deadline_s, tag):
        """Starts a client for each (name, token) at once, waits until each
        has its first frame or @deadline_s have passed, kills them; what
        happened."""
        b = self.b
        load0, psi0 = os.getloadavg(), e2e.cpu_pressure()
        t_go = time.monotonic()
        clients = []
        for name, tok in tokens:
            c = StormClient(b.env, b.port, tok, name, os.path.join(b.tmp, "%s.err" % name))
            b.clients.append(c)
            clients.append(c)
        spread = (clients[-1].started - clients[0].started) * 1000
        deadline = t_go + deadline_s
        threads = [threading.Thread(target=c.wait_frame, args=(deadline,), daemon=True) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_done = time.monotonic()
        psi1 = e2e.cpu_pressure()
        res = {"spread": spread, "from_hello": [], "from_start": [], "client_ms": [], "failed": [],
               "hellos": [], "reattach": 0, "load": (load0[0], os.getloadavg()[0])}
        if psi0 and psi1:
            res["psi"] = 100.0 * (psi1[1] - psi0[1]) / 1e6 / (psi1[0] - psi0[0])
        for c in clients:
            res["hellos"].append(c.hellos())
            if c.frame is None:
                res["failed"].append((c.name, c.why_not()))
                note("%s had no first frame; it said:\n#   %s" % (c.name, "\n#   ".join(c.lines[-12:])))
                continue
            t_frame, own_ms, kind = c.frame
            first_hello = c.when(r"^state connecting") or c.started
            res["from_hello"].append((t_frame - first_hello) * 1000)
            res["from_start"].append((t_frame - c.started) * 1000)
            res["client_ms"].append(own_ms)
            res["reattach"] += kind != "new"
        res["wall"] = (max(c.frame[0] for c in clients if c.frame) - t_go) * 1000 if res["from_hello"] else None
        with b.log.cond:
            lines = [text for t, _, text in b.log.lines if t_go <= t <= t_done]
        res["refusals"] = reasons(lines, r"\S+")
        res["started"] = sum(1 for text in lines
                             if re.search(r"session \d+ \(%s-\d+ as [^)]*\): started on port" % tag, text))
        for c in clients:
            b.drop(c)
        return res

    # --- hellos answered per second -----------------------------------------------------

    def hellos(self, k, seconds, warmup=1.0):
        note("hellos with an unknown token from %d raw peers for %.0f s" % (k, seconds + warmup))
        env = gst_launch_env(self.b.env)
        t0 = time.monotonic()
        w0, w1 = t0 + warmup, t0 + warmup + seconds
        peers = [HelloPeer(self.b, i, w1, env) for i in range(k)]
        self.peers = peers
        for p in peers:
            p.start()
        for p in peers:
            p.join(timeout=seconds + warmup + 30)
        for p in peers:
            p.stop()
        self.peers = []
        answered = [a for p in peers for a in p.answers if w0 <= a[0] <= w1]
        with self.b.log.cond:
            why = reasons([text for t, _, text in self.b.log.lines if w0 <= t <= w1], r"storm-peer-\d+@\S+")
        exits = {}
        for p in peers:
            for rc, last in p.exits:
                key = "exit %s: %s" % (rc, last[:220])
                exits[key] = exits.get(key, 0) + 1
        return {"k": k, "seconds": seconds, "answered": len(answered), "logged": sum(why.values()), "why": why,
                "sent": sum(p.sent for p in peers), "unanswered": sum(p.unanswered for p in peers),
                "foreign": sum(p.foreign for p in peers), "starts": sum(p.starts for p in peers),
                "lat": [a[1] for a in answered], "per_peer": [sum(1 for a in p.answers if w0 <= a[0] <= w1)
                                                              for p in peers], "exits": exits}

    # --- the run ------------------------------------------------------------------------

    def run(self):
        a = self.args
        e2e.N_USERS = max(a.sizes) if a.only != "hellos" else 1
        b = self.b
        b.setup()
        self.configure()
        instance, t0 = b.start_daemon()
        b.ready(instance, t0, timeout=180)      # builds the registry
        stamp = e2e.build_stamp()
        # The storms first: a daemon limiting failed logins per source
        # address would hold the hello flood against the storm's clients.
        storms, alone, hello_res = [], None, []
        if a.only != "hellos":
            alone = self.warm()
            for n in a.sizes:
                storms.append(self.storm(n, a.deadline))
        if a.only != "storm":
            for k in a.peers:
                hello_res.append(self.hellos(k, a.hello_seconds))
        rebuilt = sorted(os.path.relpath(f, e2e.BUILD) for f, m in e2e.build_stamp().items() if stamp.get(f) != m)
        self.report(storms, alone, hello_res, rebuilt)

    def report(self, storms, alone, hello_res, rebuilt):
        a = self.args
        how = "sudo bench/run storm" if not sys.argv[1:] else "sudo %s %s" % (sys.argv[0], " ".join(sys.argv[1:]))
        print("reproduce: %s   (./dev bench storm; or WAYRAY_BUILD_ROOT=build bench/e2e/bench-storm.py as root)"
              % how)
        print("wayrayd (root) + headless wayray-clients on loopback, 1920x1080, foot in every session;")
        print("sessions as real accounts (PAM: pam_unix, pam_systemd optional; user switch); %d cores" % os.cpu_count())
        if alone is not None:
            print("""
LOGIN STORM: N clients started at once (spawned one after another as fast as the benchmark can:
'spawn ms' is the first start to the last), each with a token of its own for an account of its
own, each a new session; every session is ended between storms. Per client, 'hello -> frame' is
from its first hello (its "state connecting" line) to its first complete frame ("first-frame"),
as the benchmark saw the lines arrive; 'start -> frame' is from the client's process start.
A client retries (with backoff) when its door connection is lost or replaced, or its hello goes
unanswered or it is not admitted: 'hellos' counts the hellos all N clients sent. 'no frame':
clients without a first frame %d s after the storm began (each listed below, with its exit code
or "still running", its last line and its stderr). 'last ms': storm start -> the last first
frame. Row "1 x %d": each account's first session, one at a time, before the storms (makes what
an account caches in its home; the figure of a new session alone).
""" % (a.deadline, len(alone["from_hello"]) + len(alone["failed"])))
            print("%-7s %6s %8s %10s %8s %10s %8s %7s %8s %8s" % (
                "N", "frames", "no frame", "hello->frame", "", "start->frame", "", "hellos", "spawn", "last"))
            print("%-7s %6s %8s %10s %8s %10s %8s %7s %8s %8s" % (
                "", "", "", "median ms", "max ms", "median ms", "max ms", "", "ms", "ms"))
            rows = [("1 x %d" % (len(alone["from_hello"]) + len(alone["failed"])), alone, False)]
            rows += [(str(r["n"]), r, True) for r in storms]
            for label, r, at_once in rows:
                fh, fs = r["from_hello"], r["from_start"]

                def ms(values, f):
                    return "%.0f" % f(values) if values else "-"
                print("%-7s %6d %8d %10s %8s %10s %8s %7d %8s %8s" % (
                    label, len(fh), len(r["failed"]), ms(fh, statistics.median), ms(fh, max),
                    ms(fs, statistics.median), ms(fs, max), sum(r["hellos"]),
                    "%.0f" % r["spread"] if at_once else "-", ms([r["wall"]] if at_once and r["wall"] else [], max)))
            print()
            for label, r, at_once in rows:
                facts = ["sessions started (daemon's log): %d" % r["started"]] if at_once else []
                if r["reattach"]:
                    facts.append("%d clients welcomed with new-session=false (a retried hello, their session already "
                                 "started for the first)" % r["reattach"])
                refusals = sorted(r["refusals"].items(), key=lambda kv: -kv[1])
                facts.append("hellos refused: " + (", ".join("%d x \"%s\"" % (v, k) for k, v in refusals) or "none"))
                if at_once:
                    facts.append("load (1 min) %.2f -> %.2f" % r["load"])
                    if "psi" in r:
                        facts.append("CPU pressure (PSI some) %.0f%%" % r["psi"])
                print("N=%s: %s" % (label, "; ".join(facts)))
                for name, why in r["failed"][:8]:
                    print("  no frame: %s: %s" % (name, why))
                if len(r["failed"]) > 8:
                    print("  ... and %d more without a frame" % (len(r["failed"]) - 8))
            t = [r for r in storms if r["n"] == TARGET_N]
            if t:
                r = t[0]
                met = not r["failed"] and r["from_hello"] and max(r["from_hello"]) < TARGET_MS
                print("\ntarget: N=%d every client within %d s: %s (hello -> frame max %s, %d without a frame)" % (
                    TARGET_N, TARGET_MS // 1000, "met" if met else "NOT met",
                    "%.0f ms" % max(r["from_hello"]) if r["from_hello"] else "-", len(r["failed"])))
            else:
                print("\ntarget: N=%d every client within %d s: not measured (no N=%d storm)" % (
                    TARGET_N, TARGET_MS // 1000, TARGET_N))
        if hello_res:
            print("""
DOOR HELLOS ANSWERED PER SECOND: K raw QUIC peers (gst-launch-1.0: fdsrc ! quicsink on the hello
stream, quicsrc's welcome stream ! fdsink; the way tests/integration/e2e.py sends raw hellos),
each sending a hello with an unknown token as soon as the answer to its previous one came back.
A peer process gets 2 s for an answer, else it is replaced by a new one, as is one whose
connection ended. Counted over %.0f s after 1 s of warm-up, with no sessions running.
'answered/s': answers ("refused") that reached the peer that asked, per second, all K together;
'daemon/s': refusals the daemon logged for them (answers sent, wherever they went); 'sent':
hellos sent (warm-up included); 'lost': hellos left without their answer; 'foreign': answers a
peer got carrying another peer's nonce; 'procs': peer processes started (one connection each);
'median ms': hello -> its answer; 'per peer': answers in the window, least..most. Every peer
connects from 127.0.0.1: neither wayray-client nor quicsink can bind a source address, so
distinct loopback sources are not tried, and a per-address limit applies to all K at once.
""" % a.hello_seconds)
            print("%4s %11s %9s %7s %6s %8s %6s %10s %12s" % ("K", "answered/s", "daemon/s", "sent", "lost",
                                                             "foreign", "procs", "median ms", "per peer"))
            for r in hello_res:
                lat, pp = r["lat"], r["per_peer"]
                print("%4d %11.1f %9.1f %7d %6d %8d %6d %10s %12s" % (
                    r["k"], r["answered"] / r["seconds"], r["logged"] / r["seconds"], r["sent"], r["unanswered"],
                    r["foreign"], r["starts"], "%.2f" % statistics.median(lat) if lat else "-",
                    "%d..%d" % (min(pp), max(pp))))
            print()
            for r in hello_res:
                print("K=%d: the daemon's refusals: %s" % (r["k"], ", ".join(
                    "%d x \"%s\"" % (v, k) for k, v in sorted(r["why"].items(), key=lambda kv: -kv[1])) or "none"))
                for why, count in sorted(r["exits"].items(), key=lambda kv: -kv[1])[:3]:
                    print("K=%d: %d peer processes ended by themselves: %s" % (r["k"], count, why))
        if rebuilt:
            print("\nthe build changed during the run (%s): later figures include GStreamer registry rescans and "
                  "the new binaries" % ", ".join(rebuilt))

    def cleanup(self):
        for p in self.peers:
            try:
                p.stop()
            except Exception:
                pass
        keep = os.environ.get("BENCH_STORM_KEEP_LOG")
        if keep and getattr(self.b, "log", None):
            try:
                self.b.log.file.flush()
                shutil.copy(self.b.log.file.name, keep)
            except OSError as e:
                print("# could not keep wayrayd's log: %s" % e, file=sys.stderr)
        self.b.cleanup()


def main():
    ap = argparse.ArgumentParser(prog="bench-storm", description="login storm and front-door hello rate")
    ap.add_argument("--sizes", default="8,16,32", help="storm sizes (clients at once), comma-separated")
    ap.add_argument("--deadline", type=int, default=60, help="seconds a storm's clients get for a first frame")
    ap.add_argument("--peers", default="1,16", help="concurrent raw hello peers, comma-separated")
    ap.add_argument("--hello-seconds", type=float, default=5.0)
    ap.add_argument("--only", choices=("storm", "hellos"))
    args = ap.parse_args()
    args.sizes = [int(x) for x in args.sizes.split(",") if x]
    args.peers = [int(x) for x in args.peers.split(",") if x]
    if os.geteuid() != 0:
        print("bench-storm: must run as root: it creates Unix accounts and starts wayrayd as root to run sessions "
              "as them through PAM (sudo bench/run storm)", file=sys.stderr)
        return 1
    for path in (e2e.WAYRAYD, e2e.WAYRAYCTL, e2e.CLIENT):
        if not os.access(path, os.X_OK):
            print("bench-storm: %s is missing: build first, or set WAYRAY_BUILD_ROOT to the build tree" % path,
                  file=sys.stderr)
            return 1
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    s = Storm(args)
    try:
        s.run()
        return 0
    except (Fail, OSError, subprocess.SubprocessError) as e:
        print("bench-storm: %s" % e, file=sys.stderr)
        if getattr(s.b, "log", None):
            print("wayrayd's last lines:\n" + s.b.log.tail(), file=sys.stderr)
        return 1
    finally:
        s.cleanup()


if __name__ == "__main__":
    sys.exit(main())
