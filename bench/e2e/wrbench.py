"""What the content and link benchmarks share: the build tree's programs,
a seat of wayrayd whose clients come through a counting (and possibly
capped) relay, and CPU accounting of the session's worker."""
import os
import pwd
import re
import subprocess
import sys
import tempfile

BUILD = os.path.realpath(os.environ.get("WAYRAY_BUILD_ROOT",
                                        os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "..", "..")))
SOURCE = os.path.realpath(os.environ.get("WAYRAY_SOURCE_ROOT", os.path.join(BUILD, "..")))
WAYRAYD = os.path.join(BUILD, "daemon", "wayrayd")
WAYRAYCTL = os.path.join(BUILD, "daemon", "wayrayctl")
CLIENT = os.path.join(BUILD, "client", "wayray-client")
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
import wrclient  # noqa: E402
from wrrelay import Relay  # noqa: E402

ME = pwd.getpwuid(os.getuid()).pw_name
TICK = os.sysconf("SC_CLK_TCK")
FOOT = "foot --override=cursor.blink=no --override=tweak.max-shm-pool-size-mb=0 "


def cpu_seconds(pid):
    """utime + stime of @pid and its reaped children, in seconds."""
    try:
        fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12)) / TICK


def descendants(pid):
    """The processes below @pid (children, their children, ...), alive now."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu(pids):
    """CPU seconds of @pids (each with its reaped children)."""
    return sum(cpu_seconds(p) for p in pids)


class Seat:
    """One wayrayd at a time in a private directory; start() runs a
    session of @command and returns a headless client attached to it
    through a relay (the seat's public-port), which counts every datagram."""

    def __init__(self, prefix, client_args=()):
        self.client_args = list(client_args)
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.run = os.path.join(self.tmp, "run")
        os.mkdir(self.run, 0o700)
        self.port = 36000 + os.getpid() % 1000 * 2
        self.cfg = os.path.join(self.tmp, "seat.conf")
        self.env = dict(os.environ, XDG_RUNTIME_DIR=self.run, XDG_CONFIG_HOME=os.path.join(self.tmp, "config"),
                        WAYRAY_PIPELINES_PATH=os.path.join(SOURCE, "pipelines"))
        self.env.pop("WAYLAND_DISPLAY", None)
        self.env.pop("DISPLAY", None)
        self.daemon = None
        self.relay = None

    def file(self, name, text):
        """Writes @text to a file in the seat's directory; its path."""
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, command, desktop="kiosk", extra="", **relay):
        self.relay = Relay(self.port, **relay)
        with open(self.cfg, "w") as f:
            f.write("[daemon]\nlisten-address=127.0.0.1\nport=%d\npublic-port=%d\ntoken-store=%s/tokens\n"
                    "runtime-directory=%s/seat\ncontrol-socket=%s/ctl\n[session]\ndesktop=%s\ncommand=%s\nkeymap-layout=us\n"
                    "allow-root=true\n%s" % (self.port, self.relay.port, self.tmp, self.tmp, self.run, desktop, command, extra))
        if os.path.exists(os.path.join(self.tmp, "tokens")):
            os.unlink(os.path.join(self.tmp, "tokens"))
        token = self.ctl("token-add", "bench", "--user", ME).strip()
        self.log = os.path.join(self.tmp, "wayrayd.log")
        self.daemon = subprocess.Popen([WAYRAYD, "--config", self.cfg], env=self.env, stdout=open(self.log, "w"),
                                       stderr=subprocess.STDOUT)
        if not wrclient.wait_for(lambda: "ready on port" in open(self.log).read(), timeout=20):
            sys.exit("wayrayd did not start:\n" + open(self.log).read()[-2000:])
        # Front door and session both through the relay (public-port).
        return wrclient.Client(CLIENT, self.env, self.relay.port, token, "1280x720",
                               ["--headless", "--transport", "quic", "--name", "bench"] + self.client_args)

    def ctl(self, *args):
        return subprocess.run([WAYRAYCTL, "--config", self.cfg] + list(args), env=self.env, capture_output=True,
                              text=True).stdout

    def worker_pid(self):
        rows = wrclient.parse_listing(self.ctl("list"))
        return int(rows[0].get("worker", "0")) if rows else 0

    def stat(self, pattern):
        """The first group of @pattern in the session's statistics (the
        worker reports them every 2 s), or None."""
        m = re.search(pattern, self.ctl("stats", "1"))
        return m and m.group(1)

    def encoder(self):
        m = re.search(r"H\.264 encoder: (.*)", subprocess.run([WAYRAYD, "--check", "--config", self.cfg], env=self.env,
                                                               capture_output=True, text=True).stdout)
        return m.group(1) if m else "?"

    def stop(self, client):
        client.quit()
        self.ctl("shutdown")
        try:
            self.daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
        self.relay.close()
