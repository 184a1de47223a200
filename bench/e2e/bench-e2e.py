#!/usr/bin/env python3
"""bench-e2e: wayrayd and wayray-client on loopback at 1920x1080, sessions
started as real Unix accounts through PAM.

* Time from a client presenting its token (front-door hello sent) to its
  first complete frame, for a new session (the session starter runs PAM and
  switches to the token's account, the worker starts as that user) and for a
  reattach of such a session.
* Re-adoption after a daemon restart: with 8 sessions running, wayrayd is
  SIGKILLed and started again; the time from the new process's start until
  it has adopted every session (its "adopted on port" lines), and until a
  client with one of the tokens, started as soon as the front door is open,
  has its first frame again.
* Time from a keystroke at the client (navigation event into its pipeline)
  to the next frame the client shows, with foot echoing the key.

The benchmark runs as root: it creates its own accounts (useradd, named
wrb-<random>-N), a PAM service of its own in a temporary directory (not
/etc/pam.d), gives o+x to the directories between / and the build tree where
it is missing, and undoes all of it at the end, also when it fails: sessions
ended, the accounts' processes killed, the accounts and their homes deleted,
modes restored, files removed.

A new session's milestones come untraced from what its starter and worker
leave in the file system and from wayrayd's log; at the end, 5 more new
sessions run with wayrayd under strace -f for a finer breakdown (starter
exec, PAM, worker exec, pipeline start, the application's start).

Usage: bench-e2e [REPEATS] (default 20 for first frames and restarts, 10x
that for keystrokes). `bench-e2e --phases [N]` runs only the traced
breakdown, over N (default 5) new sessions.
"""
import os
import pwd
import re
import secrets
import signal
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("WAYRAY_BUILD_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SOURCE = os.environ.get("WAYRAY_SOURCE_ROOT", os.path.join(BUILD, ".."))
BUILD = os.path.realpath(BUILD)
SOURCE = os.path.realpath(SOURCE)
WAYRAYD = os.path.join(BUILD, "daemon", "wayrayd")
WAYRAYCTL = os.path.join(BUILD, "daemon", "wayrayctl")
CLIENT = os.path.join(BUILD, "client", "wayray-client")
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
import wrclient  # noqa: E402

PAM_SERVICE = "wayray-bench"
N_USERS = 8                     # also the sessions running across a restart
COMMAND = "foot --override=cursor.blink=no bash --norc --noprofile"
TARGET_NEW_MS = 300
TARGET_REATTACH_MS = 150
TARGET_ADOPT_MS = 1000
TARGET_KEY_MS = 10


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    return subprocess.run(cmd, **kw)


def wait_for(pred, timeout=10, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def pids_of_uid(uid):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/status" % p) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if str(uid) in line.split()[1:]:
                            out.append(int(p))
                        break
        except OSError:
            pass
    return out


def note(text):
    """Progress, on stderr (the report is stdout)."""
    print("# " + text, file=sys.stderr, flush=True)


def cpu_pressure():
    """(CLOCK_MONOTONIC, total µs some task waited for a CPU) from PSI, or
    None."""
    try:
        with open("/proc/pressure/cpu") as f:
            m = re.search(r"^some .*total=(\d+)", f.read(), re.M)
        return (time.monotonic(), int(m.group(1))) if m else None
    except OSError:
        return None


def build_stamp():
    """What the benchmark runs, to notice a rebuild during the run (a new
    plugin makes every account's GStreamer registry scan it again)."""
    files = [WAYRAYD, WAYRAYCTL, CLIENT]
    for root, _, names in os.walk(os.path.join(BUILD, "gst")):
        files += [os.path.join(root, n) for n in names if n.endswith(".so")]
    out = {}
    for f in files:
        try:
            out[f] = os.stat(f).st_mtime_ns
        except OSError:
            out[f] = None
    return out


class Fail(Exception):
    pass


class DaemonLog:
    """Every line wayrayd (and the starters and workers writing to the
    same pipe) prints, stamped with CLOCK_MONOTONIC as it arrives."""

    def __init__(self, path):
        self.lines = []             # (time, daemon instance, text)
        self.cond = threading.Condition()
        self.file = open(path, "a")

    def attach(self, stream, instance):
        threading.Thread(target=self._read, args=(stream, instance), daemon=True).start()

    def _read(self, stream, instance):
        for raw in iter(stream.readline, b""):
            t = time.monotonic()
            text = raw.decode(errors="replace").rstrip("\n")
            with self.cond:
                self.lines.append((t, instance, text))
                self.file.write("%.6f [%d] %s\n" % (t, instance, text))
                self.file.flush()
                self.cond.notify_all()

    def wait(self, pred, timeout):
        """pred(lines) as soon as it is true, or its last value at the
        deadline."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred(self.lines)
                left = deadline - time.monotonic()
                if v or left <= 0:
                    return v
                self.cond.wait(left)

    def first(self, rx, instance=None, after=0.0, timeout=30):
        """The time of the first line matching @rx (from @instance, after
        @after), or None."""
        rx = re.compile(rx)

        def find(lines):
            for t, i, text in lines:
                if t >= after and (instance is None or i == instance) and rx.search(text):
                    return t
            return None
        return self.wait(find, timeout)

    def tail(self, n=30):
        with self.cond:
            return "\n".join(text for _, _, text in self.lines[-n:])


class Client(wrclient.Client):
    """A headless client; remembers when each of its lines arrived."""

    def __init__(self, env, port, token, name, size="1920x1080"):
        self.started = time.monotonic()
        super().__init__(CLIENT, env, port, token, size, ["--headless", "--name", name])
        self.stamps = []

    def _line(self, deadline):
        line = super()._line(deadline)
        if line is not None:
            self.stamps.append(time.monotonic())
        return line

    def expect(self, pattern, timeout=30):
        """The match and the time its line arrived; raises when none came."""
        m = super().expect(pattern, timeout)
        if not m:
            raise Fail("client did not report %r; it said:\n%s" % (pattern, "\n".join(self.lines[-10:])))
        return m, self.stamps[-1]

    def when(self, pattern):
        """When the first line so far matching @pattern arrived, or None."""
        rx = re.compile(pattern)
        for line, t in zip(self.lines, self.stamps):
            if rx.search(line):
                return t
        return None

    def stop(self):
        self.kill()


class Bench:
    def __init__(self):
        self.tmp = None
        self.users = []             # pwd entries
        self.changed = {}           # directory -> mode before
        self.daemon = None
        self.instances = 0
        self.clients = []
        self.starters = set()
        self.env = None
        self.tracer = None

    # --- setup and teardown -------------------------------------------------------------

    def open_path(self, paths):
        """o+x on every directory from / down to each of @paths (the
        accounts' workers exec the build tree's wayrayd and load its
        plugins); what was changed is restored at the end."""
        for top in paths:
            parts = os.path.realpath(top).split("/")
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i]) or "/"
                mode = stat.S_IMODE(os.stat(d).st_mode)
                if not mode & 0o001 and d not in self.changed:
                    self.changed[d] = mode
                    os.chmod(d, mode | 0o001)
        if self.changed:
            print("# made o+x for the benchmark (restored at the end): " + ", ".join(sorted(self.changed)),
                  flush=True)

    def setup(self):
        self.tmp = tempfile.mkdtemp(prefix="wayray-bench-")
        os.chmod(self.tmp, 0o755)   # the seat's runtime directory is in it
        self.open_path([BUILD, os.path.join(SOURCE, "pipelines")])
        tag = secrets.token_hex(3)
        for k in range(N_USERS):
            name = "wrb-%s-%d" % (tag, k)
            out = run(["useradd", "-m", "-s", "/bin/bash", name])
            if out.returncode != 0:
                raise Fail("useradd %s: %s" % (name, out.stderr.strip()))
            self.users.append(pwd.getpwnam(name))
        pam_dir = os.path.join(self.tmp, "pam.d")
        os.mkdir(pam_dir, 0o755)
        with open(os.path.join(pam_dir, PAM_SERVICE), "w") as f:
            f.write("auth     required pam_unix.so\n"
                    "account  required pam_unix.so\n"
                    "session  required pam_unix.so\n"
                    "session  optional pam_systemd.so\n")
        self.port = 31000 + (os.getpid() % 80) * 50
        self.cfg = os.path.join(self.tmp, "seat.conf")
        self.runtime = os.path.join(self.tmp, "seat")
        with open(self.cfg, "w") as f:
            f.write("[daemon]\nlisten-address=127.0.0.1\nport=%d\nsession-ports=%d-%d\ntoken-store=%s/tokens\n"
                    "runtime-directory=%s\npam-service=%s\npam-directory=%s\n"
                    "[session]\ndesktop=kiosk\ncommand=%s\n"
                    % (self.port, self.port + 1, self.port + 40, self.tmp, self.runtime, PAM_SERVICE, pam_dir,
                       COMMAND))
        run_dir = os.path.join(self.tmp, "run")
        os.mkdir(run_dir, 0o700)
        env = dict(os.environ, XDG_RUNTIME_DIR=run_dir, XDG_CONFIG_HOME=os.path.join(self.tmp, "config"),
                   WAYRAY_PIPELINES_PATH=os.path.join(SOURCE, "pipelines"), WLR_RENDERER="pixman",
                   WLR_BACKENDS="headless", WLR_LIBINPUT_NO_DEVICES="1")
        if "GST_PLUGIN_PATH" not in env and "GST_PLUGIN_PATH_1_0" not in env:
            env["GST_PLUGIN_PATH"] = ":".join(os.path.join(BUILD, "gst", p) for p in ("wayray", "tiles", "quic"))
        # A GStreamer registry of the benchmark's own (made at the first
        # start of wayrayd, before anything is timed), so that other GStreamer
        # programs run as root meanwhile, with other plugin paths, do not make
        # wayrayd rescan its plugins at a timed start. wayrayd shares it with
        # its sessions' starters and workers.
        env["GST_REGISTRY"] = env["GST_REGISTRY_1_0"] = os.path.join(self.tmp, "gst-registry.bin")
        for k in ("WAYLAND_DISPLAY", "DISPLAY"):
            env.pop(k, None)
        self.env = env
        self.log = DaemonLog(os.path.join(self.tmp, "wayrayd.log"))

    def cleanup(self):
        if self.tracer and self.tracer.poll() is None:
            self.tracer.send_signal(signal.SIGINT)
            try:
                self.tracer.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.tracer.kill()
        for c in self.clients:
            try:
                c.kill()
            except Exception:
                pass
        if self.daemon and self.daemon.poll() is None:
            try:
                self.ctl("shutdown", timeout=30)
                self.daemon.wait(timeout=30)
            except Exception:
                pass
        if self.daemon and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait()
        # Sessions a killed daemon left: their starters end them (and close
        # PAM); the session records name them too.
        records = os.path.join(self.runtime, "sessions") if self.tmp else None
        if records and os.path.isdir(records):
            for name in os.listdir(records):
                try:
                    with open(os.path.join(records, name)) as f:
                        m = re.search(r"starter=\(int\)(\d+)", f.read())
                    if m:
                        self.starters.add(int(m.group(1)))
                except OSError:
                    pass
        for pid in self.starters:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
        wait_for(lambda: not any(alive(p) for p in self.starters), timeout=10, step=0.1)
        for pid in self.starters:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        logind = os.path.isdir("/run/systemd/system") and shutil.which("loginctl")
        for pw in self.users:
            if logind:
                run(["loginctl", "terminate-user", pw.pw_name])
            run(["pkill", "-KILL", "-u", pw.pw_name])
        for pw in self.users:
            wait_for(lambda: not pids_of_uid(pw.pw_uid), timeout=10, step=0.1)
            out = run(["userdel", "-r", pw.pw_name])
            if out.returncode not in (0, 12):   # 12: home directory not removed (mail spool)
                run(["pkill", "-KILL", "-u", pw.pw_name])
                time.sleep(0.5)
                out = run(["userdel", "-r", "-f", pw.pw_name])
                if out.returncode != 0:
                    print("# userdel %s: %s" % (pw.pw_name, out.stderr.strip()), file=sys.stderr)
        for d, mode in self.changed.items():
            os.chmod(d, mode)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # --- the daemon -------------------------------------------------------------------

    def start_daemon(self, wrap=()):
        """Starts wayrayd; returns (its instance number, the monotonic time
        just before it was started)."""
        self.instances += 1
        t0 = time.monotonic()
        self.daemon = subprocess.Popen(list(wrap) + [WAYRAYD, "--config", self.cfg], env=self.env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.log.attach(self.daemon.stdout, self.instances)
        return self.instances, t0

    def ready(self, instance, after, timeout=30):
        t = self.log.first(r"ready on port", instance, after, timeout)
        if t is None:
            raise Fail("wayrayd did not come up:\n" + self.log.tail())
        return t

    def ctl(self, *args, timeout=60):
        return run([WAYRAYCTL, "--config", self.cfg] + list(args), env=self.env, timeout=timeout)

    def sessions(self):
        rows = wrclient.parse_listing(self.ctl("list").stdout)
        for r in rows:
            if r.get("starter", "0").isdigit() and int(r["starter"]) > 0:
                self.starters.add(int(r["starter"]))
        return rows

    def session_of(self, token):
        rows = [r for r in self.sessions() if r.get("token") == token]
        return rows[0] if rows else None

    def token(self, name, pw):
        out = self.ctl("token-add", name, "--user", pw.pw_name)
        if out.returncode != 0 or not out.stdout.strip():
            raise Fail("token-add %s --user %s: %s" % (name, pw.pw_name, out.stderr.strip()))
        return out.stdout.strip()

    def client(self, token, name):
        c = Client(self.env, self.port, token, name)
        self.clients.append(c)
        return c

    def drop(self, c, quit=False):
        """Kills the client (its session notices at the connection's idle
        timeout; a reattach meanwhile replaces it), or with @quit lets it
        close its connection (the session is detached at once)."""
        if quit:
            c.quit()
        else:
            c.stop()
        self.clients.remove(c)

    def milestones(self, token, knock):
        """Untraced milestones of the token's new session, in ms after the
        hello, from what its starter and worker left in the file system:
        the worker's control socket (bound by the starter once PAM's
        session is open), the session record (written once the worker has
        exec'd; its "created" field), the compositor's Wayland socket."""
        s = self.session_of(token)
        if not s:
            return {}
        wall = time.time() - time.monotonic()
        out = {}
        records = os.path.join(self.runtime, "sessions")
        try:
            out["pam"] = os.stat(os.path.join(records, "%s.sock" % s["id"])).st_ctime_ns / 1e9
            with open(os.path.join(records, "%s.session" % s["id"])) as f:
                m = re.search(r"created=\(g?int64\)(\d+)", f.read())
            if m:
                out["exec"] = int(m.group(1)) / 1e6
            out["wayland"] = os.stat(s["socket"]).st_ctime_ns / 1e9
        except (OSError, KeyError):
            pass
        return {k: (v - wall - knock) * 1000 for k, v in out.items()}

    def end(self, token):
        """Ends the token's session and waits until its starter is gone
        (PAM closed, runtime directory removed)."""
        s = self.session_of(token)
        if not s:
            return
        self.ctl("end", s["id"])
        starter = int(s.get("starter", "0"))
        if not wait_for(lambda: self.session_of(token) is None and not (starter and alive(starter)),
                        timeout=20, step=0.05):
            raise Fail("session %s (%s) did not end" % (s["id"], token))

    def new_session(self, token, name, timeout=30):
        """A client for a token without a session: (client, first-frame ms
        as the client measured it, client's knock time, daemon's "started"
        time)."""
        c = self.client(token, name)
        m, t = c.expect(r"^first-frame ([0-9.]+) new", timeout)
        ms = float(m.group(1))
        knock = t - ms / 1000.0
        started = self.log.first(r"session \d+ \(%s as [^)]*\): started on port" % re.escape(name), after=c.started,
                                 timeout=5)
        return c, ms, knock, started

    # --- the measurements --------------------------------------------------------------

    def main(self, repeats):
        instance, t0 = self.start_daemon()
        self.ready(instance, t0, timeout=180)   # builds the registry
        load_before = os.getloadavg()
        psi_before = cpu_pressure()
        stamp = build_stamp()

        # The first session of each fresh account: what an account caches
        # in its home (fonts; a GStreamer registry where the daemon shares
        # none) is made then. Not counted below.
        cold = []
        note("the first session of each of the %d accounts" % len(self.users))
        for k, pw in enumerate(self.users):
            name = "first-%d" % k
            c, ms, _, _ = self.new_session(self.token(name, pw), name, timeout=120)
            cold.append(ms)
            self.drop(c)
            self.end(name)

        # New sessions and reattaches, as accounts whose caches exist.
        new, reattach, keys = [], [], []
        marks = {"pam": [], "exec": [], "wayland": [], "started": [], "up": [], "frame": []}
        reattach_up = []
        note("%d new sessions and reattaches, %d keystrokes" % (repeats, repeats * 10))
        for i in range(repeats):
            pw = self.users[i % len(self.users)]
            name = "run-%d" % i
            tok = self.token(name, pw)
            time.sleep(0.3)         # the previous session's teardown is over
            c, ms, knock, started = self.new_session(tok, name)
            new.append(ms)
            if started is not None:
                marks["started"].append((started - knock) * 1000)
            marks["frame"].append(ms)
            up = c.when(r"^state attached")
            if up:
                marks["up"].append((up - knock) * 1000)
            for k, v in self.milestones(name, knock).items():
                marks[k].append(v)
            self.drop(c)
            c = self.client(tok, name)
            m, t = c.expect(r"^first-frame ([0-9.]+) reattach")
            reattach.append(float(m.group(1)))
            up = c.when(r"^state attached")
            if up:
                reattach_up.append((up - t) * 1000 + reattach[-1])
            if i == 0:
                time.sleep(1.5)     # foot's prompt is up
                for k in range(repeats * 10):
                    c.send("wait-idle 30")
                    c.expect("^idle$")
                    c.send("key " + "abcdefghij"[k % 10])
                    m, _ = c.expect(r"^latency ([0-9.]+)")
                    keys.append(float(m.group(1)))
            self.drop(c)
            self.end(name)

        # Restarts: 8 sessions (one per account) running, detached.
        tokens = []
        note("%d restarts of wayrayd with %d sessions" % (repeats, N_USERS))
        for k, pw in enumerate(self.users):
            name = "desk-%d" % k
            tokens.append((name, self.token(name, pw)))
            c, _, _, _ = self.new_session(tokens[-1][1], name)
            self.drop(c, quit=True)
        if not wait_for(lambda: [r.get("state") for r in self.sessions()] == ["detached"] * N_USERS, 20, 0.1):
            raise Fail("the %d sessions are not all detached: %s" % (N_USERS, self.sessions()))
        adopt_all, door, back, back_client = [], [], [], []
        for i in range(repeats):
            time.sleep(0.5)
            self.daemon.kill()
            self.daemon.wait()
            time.sleep(0.3)         # the workers noticed; no daemon runs
            instance, t0 = self.start_daemon()
            t_ready = self.ready(instance, t0)
            name, tok = tokens[i % len(tokens)]
            c = self.client(tok, "back-%d" % i)
            m, t_frame = c.expect(r"^first-frame ([0-9.]+) reattach")

            def adopted(lines):
                ts = [t for t, inst, text in lines if inst == instance and "adopted on port" in text]
                return ts[N_USERS - 1] if len(ts) >= N_USERS else None
            t_all = self.log.wait(adopted, 20)
            if t_all is None:
                raise Fail("restart %d: not every session was adopted:\n%s" % (i, self.log.tail()))
            if not any(t >= t0 and inst == instance and "adopting %d running sessions" % N_USERS in text
                       for t, inst, text in self.log.lines):
                raise Fail("restart %d: no 'adopting %d running sessions':\n%s" % (i, N_USERS, self.log.tail()))
            rows = self.sessions()
            if len(rows) != N_USERS or any(r.get("state") == "starting" for r in rows):
                raise Fail("restart %d: wayrayctl list: %s" % (i, rows))
            adopt_all.append((t_all - t0) * 1000)
            door.append((t_ready - t0) * 1000)
            back.append((t_frame - t0) * 1000)
            back_client.append(float(m.group(1)))
            self.drop(c, quit=True)
            if not wait_for(lambda: (self.session_of(name) or {}).get("state") == "detached", 10, 0.05):
                raise Fail("restart %d: %s is not detached again" % (i, name))
        load_after = os.getloadavg()
        psi_after = cpu_pressure()
        rebuilt = sorted(os.path.relpath(f, BUILD) for f, m in build_stamp().items() if stamp.get(f) != m)

        def row(label, values, digits, target, max_instead=False):
            spread = max(values) if max_instead else pct(values, 0.99)
            met = ""
            if target:
                met = "yes" if statistics.median(values) < target and (not max_instead or spread < target) else "NO"
            print("%-52s %5d %10.*f %10.*f %9s %4s" % (label, len(values), digits, statistics.median(values),
                                                      digits, spread, "< %d" % target if target else "", met))

        print("wayrayd (root) + wayray-client on loopback, 1920x1080, foot in the session;")
        print("sessions as real accounts: PAM (pam_unix, pam_systemd optional), user switch\n")
        print("%-52s %5s %10s %10s %9s %4s" % ("measure", "runs", "median ms", "p99 ms", "target", "met"))
        row("token -> first frame, new session", new, 1, TARGET_NEW_MS)
        row("token -> first frame, reattach", reattach, 1, TARGET_REATTACH_MS)
        row("keystroke -> changed client frame", keys, 2, TARGET_KEY_MS)
        print("\n%-52s %5s %10s %10s %9s %4s" % ("daemon restart (SIGKILL, start again), 8 sessions", "runs",
                                                "median ms", "max ms", "target", "met"))
        row("start -> all 8 sessions adopted", adopt_all, 1, TARGET_ADOPT_MS, max_instead=True)
        row("start -> front door open", door, 1, 0, max_instead=True)
        row("start -> first frame at a returning client", back, 1, 0, max_instead=True)
        row("  (its token -> first frame, reattach)", back_client, 1, 0, max_instead=True)
        print("\na new session's milestones, ms after the hello (median over the %d; untraced: file times and "
              "the daemon's log):" % len(new))
        prev = 0.0
        for key, label in (("pam", "the starter has run PAM (the worker's control socket is bound)"),
                           ("exec", "the worker has exec'd as the user (the session record)"),
                           ("wayland", "the compositor has bound its Wayland socket"),
                           ("started", "the worker is ready: wayrayd logs \"started\", welcomes the client"),
                           ("up", "the client's connection to the session is up (\"state attached\")"),
                           ("frame", "the client has its first frame")):
            if marks[key]:
                med = statistics.median(marks[key])
                print("  %-66s %7.1f  +%6.1f" % (label, med, med - prev))
                prev = med
        if reattach_up:
            print("a reattach: the client's connection to the session is up %.1f ms after the hello, its first frame "
                  "%.1f ms (medians)" % (statistics.median(reattach_up), statistics.median(reattach)))
        print("the first session of each fresh account (not counted above), %d accounts: median %.1f ms, max %.1f ms"
              % (len(cold), statistics.median(cold), max(cold)))
        print("reattach / new (median): %.2fx" % (statistics.median(reattach) / statistics.median(new)))
        print("load average (1 min) before / after: %.2f / %.2f (%d cores)" % (load_before[0], load_after[0],
                                                                          os.cpu_count()))
        if psi_before and psi_after:
            print("CPU pressure during the run (PSI some, the benchmark's own processes included): %.0f%%"
                  % (100.0 * (psi_after[1] - psi_before[1]) / 1e6 / (psi_after[0] - psi_before[0])))
        if rebuilt:
            print("the build changed during the run (%s): figures after it include GStreamer registry rescans"
                  % ", ".join(rebuilt))

    # --- where a new session's time goes --------------------------------------------------

    def phases(self, n):
        """Where a new session's time goes: @n new sessions (after one not
        counted) of one account with wayrayd under strace -f, each event's
        time after the client's hello, median over the sessions. strace
        slows every process it follows, so the shares count, not the sum."""
        strace = shutil.which("strace")
        if not strace:
            print("\n(no strace here: no breakdown of a new session)")
            return
        trace = os.path.join(self.tmp, "strace")
        # Attached to the running daemon (-p): at the end strace detaches
        # from it and from every process it followed, which live on.
        tracer = self.tracer = subprocess.Popen([strace, "-f", "-ttt", "-qq", "-s", "200", "-o", trace, "-p", str(self.daemon.pid),
                                   "-e", "trace=execve,openat,setgroups,accept4,connect,bind,clone,clone3"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def traced():
            with open("/proc/%d/status" % self.daemon.pid) as f:
                return "TracerPid:\t0\n" not in f.read()
        if not wait_for(traced, 10):
            tracer.kill()
            raise Fail("strace did not attach to wayrayd")
        wall = time.time() - time.monotonic()
        note("%d new sessions with wayrayd under strace" % n)
        pw = self.users[0]
        runs = []
        for k in range(n + 1):
            name = "phase-%d" % k
            tok = self.token(name, pw)
            time.sleep(0.3)
            c, ms, knock, started = self.new_session(tok, name, timeout=120)
            frame = knock + ms / 1000.0
            self.drop(c)
            self.end(name)
            if k:
                runs.append((knock + wall, started + wall if started else None, frame + wall))
        tracer.send_signal(signal.SIGINT)
        try:
            tracer.wait(timeout=20)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait()
        if os.environ.get("BENCH_E2E_KEEP_TRACE"):
            shutil.copy(trace, os.environ["BENCH_E2E_KEEP_TRACE"])
        with open(trace, errors="replace") as f:
            lines = [m.groups() for m in (re.match(r"(\d+)\s+(\d+\.\d+)\s+(.*)", l) for l in f) if m]
        pam_file = "pam.d/" + PAM_SERVICE
        wayland = re.compile(r'sun_path="[^"]*/session-\d+/wayray-[^/"]*"')
        events = [
            ("the daemon execs the session starter", lambda pid, c, st: "--session-starter=" in c and
             c.startswith("execve(")),
            ("the starter opens the PAM service (PAM begins)", lambda pid, c, st: pam_file in c and
             c.startswith("openat(") and pid == st.get("starter")),
            ("the starter sets the user's groups (account stack done)", lambda pid, c, st:
             c.startswith("setgroups(") and pid == st.get("starter")),
            ("the starter forks the worker (PAM session open)", lambda pid, c, st: c.startswith("clone") and
             pid == st.get("starter") and "setgroups" in st),
            ("the worker execs wayrayd --session-worker", lambda pid, c, st: "--session-worker=" in c and
             c.startswith("execve(")),
            ("the worker accepts the daemon (its setup)", lambda pid, c, st: c.startswith("accept4(") and
             pid == st.get("worker") and "= -1" not in c),
            ("the worker binds the session port", lambda pid, c, st: c.startswith("bind(") and
             "AF_INET" in c and pid == st.get("worker")),
            ("the compositor binds its Wayland socket", lambda pid, c, st: c.startswith("bind(") and
             "worker" in st and wayland.search(c)),
            ("the application (foot) is exec'd", lambda pid, c, st: c.startswith("execve(") and
             "/foot\"" in c),
            ("foot connects to the Wayland socket", lambda pid, c, st: c.startswith("connect(") and
             pid == st.get("app") and wayland.search(c)),
        ]
        started_label = "the daemon logs \"started\" (worker ready; welcome)"
        frame_label = "the client has its first frame"
        per_run = []                # label -> ms after the hello, one dict per session
        for knock, started, frame in runs:
            st, at = {}, {}
            for pid, ts, call in lines:
                t = float(ts)
                if t < knock or t > frame:
                    continue
                pid = int(pid)
                for label, pred in events:
                    if label not in at and pred(pid, call, st):
                        at[label] = (t - knock) * 1000
                        if label.startswith("the starter sets"):
                            st["setgroups"] = True
                        if "starter" in label and "execs" in label:
                            st["starter"] = pid
                        elif "execs wayrayd --session-worker" in label:
                            st["worker"] = pid
                        elif "(foot) is exec'd" in label:
                            st["app"] = pid
            if started:
                at[started_label] = (started - knock) * 1000
            at[frame_label] = (frame - knock) * 1000
            per_run.append(at)
        # In the order they happen (the worker reports ready before its
        # application starts).
        labels = [e[0] for e in events]
        labels.insert(labels.index("the application (foot) is exec'd"), started_label)
        labels.append(frame_label)
        medians = {l: statistics.median([r[l] for r in per_run if l in r]) for l in labels
                   if any(l in r for r in per_run)}
        print("\nwhere a new session's time goes (wayrayd under strace -f, %d new sessions of one account): "
              "ms after the client's hello, and since the event before, medians" % len(runs))
        prev = None
        for label in [l for l in labels if l in medians]:
            deltas = [r[label] - r[prev] for r in per_run if label in r and prev in r] if prev else \
                [r[label] for r in per_run if label in r]
            print("  %-58s %7.1f  +%6.1f" % (label, medians[label], statistics.median(deltas) if deltas else 0))
            prev = label
        for label in labels:
            if label not in medians:
                print("  %-58s       -  (not seen)" % label)


def main():
    args = sys.argv[1:]
    if os.geteuid() != 0:
        print("bench-e2e: must run as root: it creates Unix accounts and starts wayrayd as root to run sessions "
              "as them through PAM (sudo bench/run e2e)", file=sys.stderr)
        return 1
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    b = Bench()
    try:
        b.setup()
        if args and args[0] == "--phases":
            instance, t0 = b.start_daemon()
            b.ready(instance, t0, timeout=180)
            b.phases(int(args[1]) if len(args) > 1 else 5)
        else:
            b.main(int(args[0]) if args else 20)
            b.phases(5)
        return 0
    except Fail as e:
        print("bench-e2e: %s" % e, file=sys.stderr)
        if getattr(b, "log", None):
            print("wayrayd's last lines:\n" + b.log.tail(), file=sys.stderr)
        return 1
    finally:
        b.cleanup()


if __name__ == "__main__":
    sys.exit(main())
