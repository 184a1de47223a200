#!/usr/bin/env python3
"""WayRay sessions as real Unix accounts: wayrayd as root with tokens mapped
to users this test creates, sessions opened through PAM (a test PAM
directory, /etc/pam.d is never touched), real foot sessions reached by
headless wayray-clients over QUIC on loopback.

Checks who the session's processes run as and with what environment, what
one user can and cannot reach of the seat and of another user's session,
that the seat's private key is nowhere a user can read (files and process
memory), PAM's open/close, refused accounts, adoption after the daemon is
killed, revocation, detached-timeout, max-sessions-per-user, reloads, and
that shutdown leaves nothing behind.

Run by meson (`meson test accounts`) with the build tree in the
environment, as root; prints one line per check and closes with
"N passed, N failed".
"""
import array
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wrclient  # noqa: E402
from wrclient import parse_listing, read_ppm, same_picture, wait_for  # noqa: E402

BUILD = os.environ["WAYRAY_BUILD_ROOT"]
SOURCE = os.environ["WAYRAY_SOURCE_ROOT"]
WAYRAYD = os.path.join(BUILD, "daemon", "wayrayd")
WAYRAYCTL = os.path.join(BUILD, "daemon", "wayrayctl")
CLIENT = os.path.join(BUILD, "client", "wayray-client")
PAM_SERVICE = "wayray-test"
COMMAND = "foot --override=cursor.blink=no bash --norc --noprofile"
SIZE = "800x600"

results = []


def check(name, ok, detail=""):
    ok = bool(ok)
    results.append(ok)
    print(("ok     " if ok else "FAILED ") + name + ("" if ok else ": " + str(detail)), flush=True)
    return ok


def info(text):
    print("#      " + text, flush=True)


class Client(wrclient.Client):
    """A headless client of the daemon under test."""

    def __init__(self, env, port, token, name, size=SIZE):
        super().__init__(CLIENT, env, port, token, size, ["--headless", "--name", name])

    def out(self):
        return "\n".join(self.lines)


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    return subprocess.run(cmd, **kw)


# --- processes ------------------------------------------------------------------

def proc_status(pid):
    fields = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.split()
    except OSError:
        return None
    return fields


def proc_environ(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    env = {}
    for item in data.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            env[k.decode(errors="replace")] = v.decode(errors="replace")
    return env


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def parent_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def descendants(pid):
    kids = {}
    for p in all_pids():
        kids.setdefault(parent_of(p), []).append(p)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def pids_of_uid(uid):
    out = []
    for p in all_pids():
        st = proc_status(p)
        if st and str(uid) in st.get("Uid", []):
            out.append(p)
    return out


def alive(pid):
    st = proc_status(pid) if pid else None
    return st is not None and st.get("State", ["Z"])[0] not in ("Z", "X")


def scan_memory(pid, needles):
    """Searches the memory of @pid (every readable page it has in memory or
    swap, as /proc/PID/pagemap tells) for every needle; returns (hits,
    bytes scanned)."""
    hits, scanned = [], 0
    overlap = max(len(n) for n in needles.values()) - 1
    page = os.sysconf("SC_PAGE_SIZE")
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read().splitlines()
        fd = os.open("/proc/%d/mem" % pid, os.O_RDONLY)
        pm = os.open("/proc/%d/pagemap" % pid, os.O_RDONLY)
    except OSError:
        return hits, scanned
    try:
        for line in maps:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            path = parts[5].strip() if len(parts) > 5 else ""
            if parts[1][0] != "r" or path in ("[vvar]", "[vvar_vclock]", "[vsyscall]") or hi >= 1 << 63:
                continue
            if hi - lo > 64 << 30:
                # AddressSanitizer's shadow of the whole address space (it
                # holds only its bookkeeping, never a program's data).
                continue
            # Runs of pages present (bit 63) or swapped (bit 62), read from
            # the page map a chunk at a time: a sanitizer's shadow memory
            # reserves terabytes, present in a few pages only.
            runs, run_lo, chunk = [], None, 1 << 16
            for first in range(lo // page, hi // page, chunk):
                count = min(chunk, hi // page - first)
                try:
                    entries = array.array("Q", os.pread(pm, count * 8, first * 8))
                except OSError:
                    break
                if not any(entries):
                    if run_lo is not None:
                        runs.append((run_lo, first * page))
                        run_lo = None
                    continue
                for i, e in enumerate(entries):
                    if e >> 62:
                        if run_lo is None:
                            run_lo = (first + i) * page
                    elif run_lo is not None:
                        runs.append((run_lo, (first + i) * page))
                        run_lo = None
            if run_lo is not None:
                runs.append((run_lo, hi))
            for a, b in runs:
                off, tail = a, b""
                while off < b:
                    try:
                        data = os.pread(fd, min(8 << 20, b - off), off)
                    except OSError:
                        break
                    if not data:
                        break
                    buf = tail + data
                    for name, needle in needles.items():
                        if needle in buf:
                            hits.append("%s at %x (%s)" % (name, off, path or "anonymous"))
                    scanned += len(data)
                    tail = buf[-overlap:]
                    off += len(data)
    finally:
        os.close(fd)
        os.close(pm)
    return hits, scanned


def files_containing(top, needles):
    hits = []
    for root, dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode) or st.st_size > 64 << 20:
                    continue
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            hits += ["%s in %s" % (n, path) for n, needle in needles.items() if needle in data]
    return hits


# --- the seat key --------------------------------------------------------------------

def key_needles(pem_path):
    """What of the key at @pem_path must appear nowhere: its PEM body (and
    the first lines of it, which hold the private scalar), its DER, and the
    private scalar itself in both byte orders (big-endian as in DER,
    little-endian as in a bignum's limbs)."""
    with open(pem_path, "rb") as f:
        pem = f.read()
    body = [l.strip() for l in pem.splitlines() if l.strip() and not l.startswith(b"-----")]
    needles = {"PEM body": b"\n".join(body), "PEM line 1": body[0]}
    if len(body) > 1 and len(body[1]) >= 32:
        needles["PEM line 2"] = body[1]
    der = run(["openssl", "pkey", "-in", pem_path, "-outform", "DER"], text=False).stdout
    if der:
        needles["DER"] = der
    text = run(["openssl", "pkey", "-in", pem_path, "-text", "-noout"]).stdout
    m = re.search(r"priv:\s*\n((?:\s+[0-9a-f:]+\n)+)", text)
    if m:
        scalar = bytes.fromhex(re.sub(r"[^0-9a-f]", "", m.group(1))).lstrip(b"\0")
        if len(scalar) >= 16:
            needles["private scalar (big-endian)"] = scalar
            needles["private scalar (little-endian)"] = scalar[::-1]
    return needles


# --- accounts and the tree they must reach ---------------------------------------

def make_users(tag, letters, users):
    """Creates the test users into @users as it goes (so that a failure
    half way still leaves all of them to remove)."""
    for letter in letters:
        name = "wrt-%s-%s" % (tag, letter)
        out = run(["useradd", "-m", "-s", "/bin/bash", name])
        if out.returncode != 0:
            raise RuntimeError("useradd %s: %s" % (name, out.stderr))
        users[letter] = pwd.getpwnam(name)


def remove_users(users):
    for pw in users.values():
        run(["pkill", "-KILL", "-u", pw.pw_name])
    for pw in users.values():
        wait_for(lambda: not pids_of_uid(pw.pw_uid), timeout=10)
        run(["userdel", "-r", pw.pw_name])


def open_path(paths, changed):
    """o+x on every directory from / down to each of @paths; what was
    changed goes into @changed (path: mode), to restore."""
    for top in paths:
        parts = os.path.abspath(top).split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i]) or "/"
            mode = stat.S_IMODE(os.stat(d).st_mode)
            if not mode & 0o001 and d not in changed:
                changed[d] = mode
                os.chmod(d, mode | 0o001)


# --- the test --------------------------------------------------------------------------

def main():
    if os.geteuid() != 0:
        check("the accounts test runs as root", False, "it creates Unix accounts and runs wayrayd as root")
        return

    tag = secrets.token_hex(3)
    tmp = tempfile.mkdtemp(prefix="wayray-acc-")
    os.chmod(tmp, 0o755)
    changed = {}
    users = {}
    state = {"daemon": None, "clients": [], "starters": set(), "apps": set()}
    try:
        open_path([BUILD, os.path.join(SOURCE, "pipelines")], changed)
        if changed:
            info("made o+x for the test: " + ", ".join(sorted(changed)))
        make_users(tag, "abc", users)
        run_test(tmp, tag, users, state)
    finally:
        cleanup(state, users, changed)
    # Cleanup checks: nothing of the test users is left, they are gone.
    left = [(pw.pw_name, pids_of_uid(pw.pw_uid)) for pw in users.values()]
    check("no process of the test users is left", all(not p for _, p in left), str(left))
    gone = []
    for pw in users.values():
        try:
            pwd.getpwnam(pw.pw_name)
        except KeyError:
            gone.append(not os.path.exists(pw.pw_dir))
            continue
        gone.append(False)
    check("the test users are deleted with their homes", gone and all(gone), str([p.pw_name for p in users.values()]))
    restored = all(stat.S_IMODE(os.stat(d).st_mode) == m for d, m in changed.items())
    check("directory modes are restored", restored, str(changed))
    if all(results) and not os.environ.get("WAYRAY_TEST_KEEP"):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        info("kept %s for inspection" % tmp)


def cleanup(state, users, changed):
    for c in state["clients"]:
        try:
            c.kill()
        except Exception:
            pass
    daemon = state["daemon"]
    if daemon and daemon.poll() is None and state.get("control"):
        try:
            run([WAYRAYCTL, "--socket", state["control"], "shutdown"], env=state["env"], timeout=20)
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    if daemon and daemon.poll() is None:
        daemon.kill()
        daemon.wait()
    # Sessions whose daemon is gone: their starters end them (PAM closes).
    for pid in state["starters"]:
        if alive(pid) and (proc_status(pid) or {}).get("Uid", ["?"])[0] == "0":
            os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not any(alive(p) for p in state["starters"]), timeout=10)
    for pid in state["starters"] | state["apps"]:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    remove_users(users)
    for d, mode in changed.items():
        os.chmod(d, mode)


def run_test(tmp, tag, users, state):
    A, B, C = users["a"], users["b"], users["c"]
    runtime = os.path.join(tmp, "seat")
    control = os.path.join(runtime, "control")
    records = os.path.join(runtime, "sessions")
    store = os.path.join(tmp, "tokens")
    config_home = os.path.join(tmp, "config")
    seat_key = os.path.join(config_home, "wayray", "server-key.pem")
    base = 35000 + (os.getpid() % 200) * 20
    pam_dir = os.path.join(tmp, "pam.d")
    pam_log = os.path.join(tmp, "pam.log")
    os.mkdir(pam_dir, 0o755)
    with open(os.path.join(tmp, "pamlog.sh"), "w") as f:
        f.write('#!/bin/sh\necho "$PAM_TYPE $PAM_USER $PAM_SERVICE" >> %s\n' % pam_log)
    os.chmod(os.path.join(tmp, "pamlog.sh"), 0o755)
    with open(os.path.join(pam_dir, PAM_SERVICE), "w") as f:
        f.write("auth     required pam_unix.so\n"
                "account  required pam_unix.so\n"
                "session  required pam_exec.so %s/pamlog.sh\n"
                "session  optional pam_systemd.so\n" % tmp)

    cfg = os.path.join(tmp, "seat.conf")
    state["control"] = control

    def write_config(session_extra=""):
        with open(cfg, "w") as f:
            f.write("[daemon]\nlisten-address=127.0.0.1\nport=%d\nsession-ports=%d-%d\n"
                    "token-store=%s\nruntime-directory=%s\npam-service=%s\npam-directory=%s\n"
                    "[session]\ndesktop=kiosk\ncommand=%s\nkeymap-layout=us\n%s"
                    % (base, base + 1, base + 10, store, runtime, PAM_SERVICE, pam_dir, COMMAND, session_extra))

    write_config()
    env = dict(os.environ, XDG_RUNTIME_DIR=os.path.join(tmp, "run"), XDG_CONFIG_HOME=config_home,
               WAYRAY_PIPELINES_PATH=os.path.join(SOURCE, "pipelines"), WAYRAY_TEST_DAEMON_SECRET="1")
    env.setdefault("GST_REGISTRY", os.path.join(tmp, "registry.bin"))
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("DISPLAY", None)
    os.mkdir(env["XDG_RUNTIME_DIR"], 0o700)
    state["env"] = env

    # Environment for the test users' own commands (wayrayctl as them):
    # nothing of root's, and no GStreamer plugin scan.
    empty = os.path.join(tmp, "no-plugins")
    os.mkdir(empty, 0o755)

    def as_user(pw, cmd, **kw):
        uenv = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": pw.pw_dir,
                "GST_REGISTRY": os.path.join(pw.pw_dir, ".wrt-registry.bin"),
                "GST_PLUGIN_SYSTEM_PATH_1_0": empty, "GST_PLUGIN_PATH_1_0": empty}
        # A sanitizer build's options (./dev test runs the suite again under them).
        uenv.update({k: v for k, v in os.environ.items() if k.endswith("SAN_OPTIONS")})
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return run([runuser, "-u", pw.pw_name, "--"] + cmd, env=uenv, cwd="/", **kw)

    def ctl(*args):
        # Token commands read the configuration (the token store); the
        # others go to the control socket, whatever the file says now.
        where = ["--config", cfg] if args[0].startswith("token-") else ["--socket", control]
        return run([WAYRAYCTL] + where + list(args), env=env)

    def ctl_as(pw, *args):
        return as_user(pw, [WAYRAYCTL, "--socket", control] + list(args))

    def sessions():
        rows = parse_listing(ctl("list").stdout)
        for r in rows:
            for k in ("starter", "pid"):
                if r.get(k, "0").isdigit() and int(r[k]) > 0:
                    state["starters" if k == "starter" else "apps"].add(int(r[k]))
        return rows

    def session_of(token):
        rows = [r for r in sessions() if r.get("token") == token]
        return rows[0] if rows else None

    def wait_session(token, timeout=15):
        """The token's listing once the worker has reported its application."""
        found = []
        wait_for(lambda: found.extend(r for r in sessions() if r.get("token") == token
                                      and r.get("pid", "0") != "0" and r.get("state") != "starting")
                 or found, timeout=timeout)
        return found[0] if found else None

    daemon_log = os.path.join(tmp, "wayrayd.log")
    open(daemon_log, "w").close()

    def log():
        with open(daemon_log, errors="replace") as f:
            return f.read()

    def start_daemon():
        d = subprocess.Popen([WAYRAYD, "--config", cfg], env=env, stdout=open(daemon_log, "a"),
                             stderr=subprocess.STDOUT)
        state["daemon"] = d
        return d

    def pam_lines(kind, pw):
        try:
            with open(pam_log) as f:
                text = f.read()
        except OSError:
            return 0
        return text.splitlines().count("%s %s %s" % (kind, pw.pw_name, PAM_SERVICE))

    def client(token, name):
        c = Client(env, base, token, name)
        state["clients"].append(c)
        return c

    def refused_client(token):
        try:
            return run([CLIENT, "127.0.0.1:%d" % base, "--token", token, "--headless", "--size", SIZE],
                       env=env, input="", timeout=40)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(e.cmd, -1, str(e.stdout), str(e.stderr))

    def read_home(pw, name):
        try:
            with open(os.path.join(pw.pw_dir, name), errors="replace") as f:
                return f.read()
        except OSError:
            return None

    def typed_file(c, pw, command, name, done=None, timeout=10):
        """Types @command into the session of @c; the contents of @name in
        the user's home once it exists (and contains @done)."""
        c.send("type " + command + "\\n")
        ok = wait_for(lambda: (read_home(pw, name) or "") != "" and
                      (done is None or done in read_home(pw, name)), timeout=timeout)
        return read_home(pw, name) if ok else None

    # --- 1. tokens map to accounts ---------------------------------------------------
    missing = "wrt-%s-nobody" % tag
    out = ctl("token-add", missing)
    check("token-add for a missing account is refused with the reason",
          out.returncode == 1 and ("there is no account '%s'; name one with --user USER" % missing) in out.stderr,
          "rc %d: %s" % (out.returncode, out.stderr))
    out2 = ctl("token-add", "desk-x", "--user", missing)
    check("token-add --user naming a missing account is refused", out2.returncode == 1, out2.stderr)
    tokens = {}
    for name, user in (("desk-a", A.pw_name), (B.pw_name, None), ("desk-c", C.pw_name),
                       ("desk-b2", B.pw_name), ("desk-a2", A.pw_name), ("desk-a3", A.pw_name)):
        out = ctl("token-add", name, *(["--user", user] if user else []))
        tokens[name] = out.stdout.strip()
    text = open(store).read()
    check("a missing account's token is not stored", missing not in text and "desk-x" not in text, text)
    check("token-add --user maps a token to another account",
          re.search(r"^desk-a %s scram-sha256:[0-9a-f]{32}:\d+:[0-9a-f]+:[0-9a-f]{64}:[0-9a-f]{64}$" % re.escape(A.pw_name),
                    text, re.M) is not None
          and len(tokens["desk-a"]) == 48 and tokens["desk-a"] not in text, text)
    check("token-add without --user maps the token to the account of its name",
          re.search(r"^%s %s scram-sha256:\S+$" % ((re.escape(B.pw_name),) * 2), text, re.M) is not None, text)
    check("the token store is root's and private", (os.stat(store).st_mode & 0o077) == 0 and os.stat(store).st_uid == 0,
          oct(os.stat(store).st_mode))

    # --- the daemon -------------------------------------------------------------
    daemon = start_daemon()
    if not check("wayrayd starts as root and reports ready", wait_for(lambda: "ready on port" in log(), 20),
                 log()[-2000:]):
        return
    st = {p: stat.S_IMODE(os.stat(p).st_mode) for p in (runtime, records, control) if os.path.exists(p)}
    check("runtime directory 0755, sessions/ 0700, control socket 0666 (all root's)",
          st == {runtime: 0o755, records: 0o700, control: 0o666} and
          all(os.stat(p).st_uid == 0 for p in st), str({k: oct(v) for k, v in st.items()}))

    # --- 2. two users, two sessions --------------------------------------------
    # One after the other: the front door serves one connection at a time.
    ca = client(tokens["desk-a"], "client-a")
    okA = ca.expect(r"state attached .* new=1", 30) is not None and ca.expect(r"^first-frame", 20) is not None
    cb = client(tokens[B.pw_name], "client-b")
    okB = cb.expect(r"state attached .* new=1", 30) is not None and cb.expect(r"^first-frame", 20) is not None
    check("user A's token gets a new session with frames", okA, ca.out() + "\n" + log()[-1500:])
    check("user B's token gets a new session with frames", okB, cb.out() + "\n" + log()[-1500:])
    if not (okA and okB):
        return
    ra, rb = wait_session("desk-a"), wait_session(B.pw_name)
    if not check("wayrayctl list shows both sessions with their users and processes",
                 ra and rb and ra.get("user") == A.pw_name and rb.get("user") == B.pw_name
                 and all(r.get(k, "0") != "0" for r in (ra, rb) for k in ("pid", "worker", "starter")),
                 str(sessions())):
        return
    raw = ctl("list").stdout
    fmt = re.compile(r"^\d+ token=\S+ user=\S+ state=(attached|detached|starting) client=\S+ size=\d+x\d+ "
                     r"port=\d+ route=[0-9a-f]{8} socket=/\S+ pid=\d+ frames=\d+ uptime=\d+s attaches=\d+ worker=\d+ starter=\d+$")
    check("wayrayctl list lines have every field, the socket as an absolute path",
          raw.splitlines() and all(fmt.match(l) for l in raw.splitlines()), raw)
    recs = [os.path.join(records, ra["id"] + ext) for ext in (".session", ".sock")]
    check("the session's record and worker socket are in sessions/, root's",
          all(os.path.exists(r) and os.stat(r).st_uid == 0 for r in recs), str(os.listdir(records)))
    check("PAM opened a session for A (open_session)", wait_for(lambda: pam_lines("open_session", A) == 1, 5),
          open(pam_log).read() if os.path.exists(pam_log) else "no PAM log")
    a_id, b_id = ra["id"], rb["id"]
    a_app, a_worker, a_starter = int(ra["pid"]), int(ra["worker"]), int(ra["starter"])
    b_app = int(rb["pid"])

    time.sleep(1.0)        # foot has drawn its prompt
    id_txt = typed_file(ca, A, "id > $HOME/id.txt; env > $HOME/env.txt; echo done > $HOME/typed.txt",
                        "typed.txt", "done")
    id_txt = read_home(A, "id.txt") if id_txt else None
    env_txt = read_home(A, "env.txt")
    a_groups = sorted(set(os.getgrouplist(A.pw_name, A.pw_gid)))
    m = re.match(r"uid=(\d+)\S* gid=(\d+)\S* groups=(\S+)", id_txt or "")
    groups = sorted(int(g.split("(")[0]) for g in m.group(3).split(",")) if m else None
    check("commands typed in A's terminal run as A (id: uid, gid, groups)",
          m and int(m.group(1)) == A.pw_uid and int(m.group(2)) == A.pw_gid and groups == a_groups,
          "%r, expected uid %d gid %d groups %s" % (id_txt, A.pw_uid, A.pw_gid, a_groups))

    sess_env = dict(l.split("=", 1) for l in (env_txt or "").splitlines() if "=" in l)
    logind = "/run/user/%d" % A.pw_uid
    if os.path.isdir(logind) and os.stat(logind).st_uid == A.pw_uid:
        a_runtime = logind
    else:
        a_runtime = os.path.join(runtime, "session-" + a_id)
    expected = {"HOME": A.pw_dir, "USER": A.pw_name, "LOGNAME": A.pw_name, "SHELL": "/bin/bash",
                "XDG_SESSION_TYPE": "wayland", "XDG_RUNTIME_DIR": a_runtime}
    wrong = {k: sess_env.get(k) for k, v in expected.items() if sess_env.get(k) != v}
    check("the session's environment is a login's (HOME USER LOGNAME SHELL XDG_SESSION_TYPE XDG_RUNTIME_DIR)",
          env_txt and not wrong, "wrong: %s (expected %s)" % (wrong, expected))
    check("PATH and LANG are set, WAYLAND_DISPLAY names the session's socket",
          sess_env.get("PATH") and sess_env.get("LANG") and
          os.path.join(sess_env.get("XDG_RUNTIME_DIR", "?"), sess_env.get("WAYLAND_DISPLAY", "?")) == ra.get("socket"),
          "PATH=%s LANG=%s WAYLAND_DISPLAY=%s, listing socket %s" % (
              sess_env.get("PATH"), sess_env.get("LANG"), sess_env.get("WAYLAND_DISPLAY"), ra.get("socket")))
    login_vars = {"HOME", "USER", "LOGNAME", "SHELL", "PATH", "LANG", "XDG_RUNTIME_DIR", "XDG_SESSION_TYPE",
                  "WAYLAND_DISPLAY", "PWD", "OLDPWD", "SHLVL", "_", "TERM", "COLORTERM"}

    def leaked(e):
        return sorted(k for k, v in env.items() if k not in login_vars and e.get(k) == v) + \
            sorted(k for k in e if k.startswith(("GST_", "WLR_")) or k == "WAYRAY_TEST_DAEMON_SECRET")

    check("nothing of the daemon's environment reaches the session's shell (no GST_*, WLR_*, marker)",
          env_txt and not leaked(sess_env), str(leaked(sess_env)))

    a_procs = [a_app] + descendants(a_app)
    bad = []
    for pid in a_procs + [a_worker]:
        s = proc_status(pid)
        e = proc_environ(pid)
        if s is None or e is None:
            bad.append("%d gone" % pid)
            continue
        if s["Uid"] != [str(A.pw_uid)] * 4 or s["Gid"] != [str(A.pw_gid)] * 4:
            bad.append("%d %s Uid %s Gid %s" % (pid, s["Name"], s["Uid"], s["Gid"]))
        if sorted(int(g) for g in s.get("Groups", [])) != a_groups:
            bad.append("%d %s Groups %s" % (pid, s["Name"], s.get("Groups")))
        if e.get("HOME") != A.pw_dir:
            bad.append("%d %s HOME=%s" % (pid, s["Name"], e.get("HOME")))
    names = [proc_status(p)["Name"][0] for p in a_procs if proc_status(p)]
    check("every process of A's session (%s) and its worker run as A with A's HOME" % " ".join(names),
          len(a_procs) >= 2 and not bad, "; ".join(bad) or "only %s" % a_procs)
    # The session's sound server: the worker's own children, as A.
    sound = {}
    for pid in descendants(a_worker):
        st = proc_status(pid)
        if st and st["Name"][0] in ("pipewire", "wireplumber", "pipewire-pulse", "dbus-daemon"):
            sound[st["Name"][0]] = st["Uid"]
    check("A's session has its own sound server (pipewire, wireplumber, pipewire-pulse, a bus), running as A",
          len(sound) == 4 and all(u == [str(A.pw_uid)] * 4 for u in sound.values()), str(sound))
    sound_dir = os.path.join(a_runtime, "wayray-sound-" + a_id)
    sdst = os.stat(sound_dir) if os.path.isdir(sound_dir) else None
    check("its sockets are in a directory of A's session, A's own, 0700",
          sdst and sdst.st_uid == A.pw_uid and stat.S_IMODE(sdst.st_mode) == 0o700
          and os.path.exists(os.path.join(sound_dir, "pipewire-0")),
          "%s %s" % (sound_dir, sdst and (sdst.st_uid, oct(sdst.st_mode))))
    # foot rewrites its own argv (--override=cursor.blink=no reads back as
    # "--override=cursor" "blink" "no"), so the check is on what it runs.
    def cmdline(pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return [a.decode() for a in f.read().split(b"\0")[:-1]]
        except OSError:
            return None
    argvs = [cmdline(p) for p in a_procs]
    check("the session runs the configured command (foot, and bash --norc --noprofile in it)",
          argvs and argvs[0] and argvs[0][0] == "foot" and shlex.split(COMMAND)[2:] in argvs[1:], str(argvs))
    app_leaks = {p: leaked(proc_environ(p) or {}) for p in a_procs}
    check("the applications' environments hold nothing of the daemon's (GST_REGISTRY, marker)",
          not any(app_leaks.values()), str(app_leaks))
    wenv = proc_environ(a_worker) or {}
    check("the worker has the GStreamer/wlroots variables but not the daemon's others",
          "GST_REGISTRY" in wenv and "WLR_BACKENDS" in wenv and "WAYRAY_TEST_DAEMON_SECRET" not in wenv
          and "XDG_CONFIG_HOME" not in wenv and wenv.get("USER") == A.pw_name,
          str(sorted(wenv)))
    sst = proc_status(a_starter)
    check("the session's starter runs as root and is the worker's parent",
          sst and sst["Uid"][0] == "0" and parent_of(a_worker) == a_starter,
          "starter %s, worker's parent %s" % (sst and sst["Uid"], parent_of(a_worker)))

    rst = os.stat(a_runtime) if os.path.isdir(a_runtime) else None
    check("A's XDG_RUNTIME_DIR is A's own, 0700, and holds the session's socket",
          rst and rst.st_uid == A.pw_uid and stat.S_IMODE(rst.st_mode) == 0o700 and
          os.path.dirname(ra.get("socket", "")) == a_runtime,
          "%s %s, socket %s" % (a_runtime, rst and (rst.st_uid, oct(rst.st_mode)), ra.get("socket")))

    # --- 3. isolation ------------------------------------------------------------
    b_runtime = os.path.dirname(rb.get("socket", ""))
    script = os.path.join(A.pw_dir, "iso.sh")
    with open(script, "w") as f:
        f.write('exec > "$HOME/iso.txt" 2>&1\n'
                't() { n=$1; shift; if "$@" >/dev/null 2>&1; then echo "$n=allowed"; else echo "$n=denied"; fi; }\n')
        for n, cmd in (("token-store", "cat '%s'" % store),
                       ("seat-key", "cat '%s'" % seat_key),
                       ("records", "ls '%s'" % records),
                       ("own-record", "cat '%s/%s.session'" % (records, a_id)),
                       ("own-worker-socket", "test -e '%s/%s.sock'" % (records, a_id)),
                       ("b-runtime", "ls '%s'" % b_runtime),
                       ("b-key", "cat '%s/wayray-session-%s.key'" % (b_runtime, b_id)),
                       ("b-sound", "ls '%s/wayray-sound-%s'" % (b_runtime, b_id)),
                       ("own-runtime", 'ls "$XDG_RUNTIME_DIR"'),
                       ("own-key", 'cat "$XDG_RUNTIME_DIR/wayray-session-%s.key"' % a_id)):
            f.write("t %s %s\n" % (n, cmd))
        f.write("echo finished\n")
    os.chown(script, A.pw_uid, A.pw_gid)
    iso = typed_file(ca, A, "sh $HOME/iso.sh", "iso.txt", "finished")
    res = dict(l.split("=", 1) for l in (iso or "").splitlines() if "=" in l)
    denied = ("token-store", "seat-key", "records", "own-record", "own-worker-socket", "b-runtime", "b-key",
              "b-sound")
    check("from A's session: the token store, the seat key, the session records and worker sockets, "
          "B's runtime directory, key and sound server are out of reach", iso and all(res.get(n) == "denied" for n in denied), iso)
    check("from A's session: its own runtime directory and session key are readable",
          iso and res.get("own-runtime") == "allowed" and res.get("own-key") == "allowed", iso)
    # (control) root reaches all of it: what A was denied exists.
    root_home = os.path.join(tmp, "root-home")
    os.mkdir(root_home)
    run(["sh", script], env=dict(PATH=os.environ["PATH"], HOME=root_home, XDG_RUNTIME_DIR=a_runtime))
    with open(os.path.join(root_home, "iso.txt")) as f:
        root_iso = f.read()
    check("(control) root reaches every path A was denied",
          all(l.endswith("=allowed") for l in root_iso.splitlines() if "=" in l) and "finished" in root_iso, root_iso)
    grim_txt = typed_file(ca, A, "grim $HOME/own.png; WAYLAND_DISPLAY=%s grim $HOME/other.png && "
                          "echo other=allowed > $HOME/grim.txt || echo other=denied > $HOME/grim.txt"
                          % rb.get("socket"), "grim.txt")
    own_png = os.path.join(A.pw_dir, "own.png")
    check("grim in A's session captures A's own display",
          os.path.exists(own_png) and os.path.getsize(own_png) > 100, grim_txt)
    check("grim in A's session cannot reach B's Wayland socket",
          (grim_txt or "").strip() == "other=denied" and not os.path.exists(os.path.join(A.pw_dir, "other.png")),
          grim_txt)
    check("(control) grim as root reaches B's socket",
          run(["grim", "-t", "ppm", os.path.join(tmp, "b.ppm")],
              env=dict(env, WAYLAND_DISPLAY=rb.get("socket", "?"))).returncode == 0)

    out = ctl_as(A, "list")
    rows = parse_listing(out.stdout)
    check("wayrayctl list as A shows only A's session",
          out.returncode == 0 and [r["id"] for r in rows] == [a_id] and rows[0].get("user") == A.pw_name,
          out.stdout + out.stderr)
    for cmd in ("end", "detach", "stats"):
        out = ctl_as(A, cmd, b_id)
        check("wayrayctl %s of B's session as A answers 'no session'" % cmd,
              out.returncode == 1 and ("no session '%s'" % b_id) in out.stderr and not out.stdout.strip(),
              "rc %d: %s%s" % (out.returncode, out.stdout, out.stderr))
    time.sleep(0.5)
    rb2 = session_of(B.pw_name)
    check("B's session still runs, attached", rb2 and rb2.get("state") == "attached" and alive(b_app), str(rb2))
    out = ctl_as(A, "shutdown")
    check("wayrayctl shutdown as A is refused (only root)",
          out.returncode == 1 and "only root" in out.stderr and daemon.poll() is None, out.stderr)
    out = ctl_as(A, "stats", a_id)
    check("wayrayctl stats of A's own session as A works", out.returncode == 0 and out.stdout.startswith(a_id + " "),
          out.stdout + out.stderr)
    out = as_user(A, ["cat", store])
    check("A (runuser) cannot read the token store", out.returncode != 0, out.stdout)
    out = as_user(A, ["cat", seat_key])
    check("A (runuser) cannot read the seat's private key", out.returncode != 0, out.stdout[:80])

    # --- 8. B sees only B's -------------------------------------------------------
    out = ctl_as(B, "list")
    rows = parse_listing(out.stdout)
    check("wayrayctl list as B shows only B's session",
          out.returncode == 0 and [r["id"] for r in rows] == [b_id] and rows[0].get("user") == B.pw_name,
          out.stdout + out.stderr)

    # --- 4. the seat key is nowhere A can read -----------------------------------
    needles = key_needles(seat_key)
    check("the seat key's private scalar is known to the test",
          "private scalar (big-endian)" in needles and "DER" in needles, str(sorted(needles)))
    file_hits = files_containing(a_runtime, needles) + files_containing(A.pw_dir, needles)
    check("no file in A's runtime directory or home holds the seat key", not file_hits, "; ".join(file_hits))
    t0 = time.monotonic()
    a_pids = pids_of_uid(A.pw_uid)
    mem_hits, scanned, empty_scans = [], 0, []
    for pid in a_pids:
        h, n = scan_memory(pid, needles)
        mem_hits += ["pid %d: %s" % (pid, x) for x in h]
        scanned += n
        if n == 0 and alive(pid):
            empty_scans.append(pid)
    info("scanned %.0f MB of memory of %d processes of A in %.1f s" % (scanned / 1e6, len(a_pids),
                                                                        time.monotonic() - t0))
    check("the memory of every process of A was read", len(a_pids) >= 3 and not empty_scans,
          "%d processes, unreadable: %s" % (len(a_pids), empty_scans))
    check("no process of A holds the seat key in memory (PEM, DER, private scalar)", not mem_hits,
          "; ".join(mem_hits[:10]))
    # The scan finds the key where it is: the daemon (root) holds it.
    h, _ = scan_memory(daemon.pid, needles)
    check("(control) the same scan finds the seat key in wayrayd's memory", h, "not found")
    skey = os.path.join(a_runtime, "wayray-session-%s.key" % a_id)
    kst = os.stat(skey) if os.path.exists(skey) else None
    check("the session's own key is in A's runtime directory, A's, 0600",
          kst and kst.st_uid == A.pw_uid and stat.S_IMODE(kst.st_mode) == 0o600,
          "%s: %s" % (skey, kst and (kst.st_uid, oct(kst.st_mode))))
    if kst:
        sneedles = key_needles(skey)
        check("the session's key differs from the seat key",
              sneedles.get("private scalar (big-endian)") != needles.get("private scalar (big-endian)") and
              sneedles.get("DER") != needles.get("DER"), "same key")
        h, _ = scan_memory(a_worker, sneedles)
        check("(control) the same scan finds the session's own key in A's worker", h, "not found")
        scert = os.path.join(a_runtime, "wayray-session-%s.crt" % a_id)
        check("the session's certificate is there too, A's",
              os.path.exists(scert) and os.stat(scert).st_uid == A.pw_uid, scert)

    # --- 7. re-adoption after SIGKILL of wayrayd -------------------------------
    marker = "adopt-marker-" + secrets.token_hex(4)
    ca.send("type clear; echo %s\\n" % marker)
    time.sleep(1.0)
    before = os.path.join(tmp, "before.ppm")
    snap_ok = ca.snapshot(before)
    check("a snapshot of A's terminal with the marker", snap_ok, ca.out()[-500:])
    ca.kill()
    daemon.kill()
    daemon.wait()
    time.sleep(0.5)
    check("A's and B's applications live on after wayrayd is SIGKILLed",
          alive(a_app) and alive(b_app) and alive(a_worker) and alive(a_starter),
          "app %s worker %s starter %s b %s" % (alive(a_app), alive(a_worker), alive(a_starter), alive(b_app)))
    t0 = time.monotonic()
    daemon = start_daemon()
    adopted = wait_for(lambda: sorted((r.get("id"), r.get("pid")) for r in sessions())
                       == sorted([(a_id, str(a_app)), (b_id, str(b_app))]), timeout=20)
    took = time.monotonic() - t0
    info("a new wayrayd listed the adopted sessions %.2f s after it started" % took if adopted else
         "a new wayrayd had not listed the sessions after %.0f s" % took)
    check("a new wayrayd adopts both running sessions", adopted and "adopting 2 running sessions" in log(),
          str(sessions()) + "\n" + log()[-1500:])
    ca2 = client(tokens["desk-a"], "client-a2")
    check("a client with A's token reattaches it (new=0)", ca2.expect(r"state attached .* new=0", 30) is not None,
          ca2.out() + "\n" + log()[-1000:])
    after = os.path.join(tmp, "after.ppm")
    server = os.path.join(tmp, "server.ppm")
    if ca2.expect(r"^first-frame", 20) and ca2.snapshot(after) and \
            run(["grim", "-t", "ppm", server], env=dict(env, WAYLAND_DISPLAY=ra["socket"])).returncode == 0:
        ok, why = same_picture(after, server)
        check("the reattached client shows what the session shows (grim)", ok, why)
        ok, why = same_picture(before, after) if snap_ok else (False, "no snapshot before")
        check("and it is the same terminal with the marker as before the kill", ok, why)
    else:
        check("the reattached client shows what the session shows (grim)", False,
              "no frame, snapshot or grim: " + ca2.out())
    ra = session_of("desk-a") or ra

    # --- 9. revoking A's token --------------------------------------------------
    closes = pam_lines("close_session", A)
    out = ctl("token-remove", "desk-a")
    check("wayrayctl token-remove of A's token ends its session", out.returncode == 0 and "ended 1" in out.stdout,
          out.stdout + out.stderr)
    check("A's client is told its token was revoked",
          ca2.expect(r"^detached: its token was revoked", 15) is not None, ca2.out()[-500:])
    try:
        ca2.p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    check("and exits with code 4", ca2.p.returncode == 4, str(ca2.p.returncode))
    check("A's session is gone, its application too",
          wait_for(lambda: session_of("desk-a") is None and not alive(a_app), 10), str(sessions()))
    check("PAM closed A's session (close_session)", wait_for(lambda: pam_lines("close_session", A) == closes + 1, 5),
          open(pam_log).read())
    check("A's runtime directory is removed", not os.path.exists(a_runtime), a_runtime)

    # --- 6. refused accounts -------------------------------------------------------
    run(["chage", "-E", "0", C.pw_name])
    before_dirs = (sorted(os.listdir(runtime)), sorted(os.listdir(records)))
    out = refused_client(tokens["desk-c"])
    check("an expired account is refused: exit 3, 'refused:' and the reason",
          out.returncode == 3 and "refused:" in out.stdout and "expired" in out.stdout.lower()
          and ("the account '%s' was refused" % C.pw_name) in out.stdout,
          "rc %d: %s" % (out.returncode, out.stdout + out.stderr))
    check("the daemon log names the expired account's reason",
          re.search(r"refused .*the account '%s' was refused: .*expired" % re.escape(C.pw_name), log(), re.I),
          log()[-1000:])
    time.sleep(0.5)
    rows = sessions()
    check("nothing is created for the refused account",
          not any(r.get("user") == C.pw_name for r in rows) and not pids_of_uid(C.pw_uid)
          and (sorted(os.listdir(runtime)), sorted(os.listdir(records))) == before_dirs
          and pam_lines("open_session", C) == 0,
          "%s %s %s" % (rows, (os.listdir(runtime), os.listdir(records)), before_dirs))
    run(["chage", "-E", "-1", C.pw_name])
    run(["usermod", "-s", "/usr/sbin/nologin", C.pw_name])
    out = refused_client(tokens["desk-c"])
    check("an account with the shell nologin is refused with 'no login shell'",
          out.returncode == 3 and "refused:" in out.stdout and
          ("the account '%s' has no login shell (/usr/sbin/nologin)" % C.pw_name) in out.stdout,
          "rc %d: %s" % (out.returncode, out.stdout + out.stderr))
    check("and nothing is created for it", not any(r.get("user") == C.pw_name for r in sessions())
          and pam_lines("open_session", C) == 0)

    # --- 10. reload: detached-timeout, max-sessions-per-user ----------------------------
    reloads = log().count("wayrayd: reloaded")
    write_config("detached-timeout=3s\nmax-sessions-per-user=1\n")
    daemon.send_signal(signal.SIGHUP)
    check("SIGHUP reloads the configuration file",
          wait_for(lambda: log().count("wayrayd: reloaded") > reloads, 10), log()[-800:])
    out = refused_client(tokens["desk-b2"])
    check("B's second token is refused by max-sessions-per-user (reloaded)",
          out.returncode == 3 and ("'%s' has 1 sessions already (max-sessions-per-user)" % B.pw_name) in out.stdout,
          "rc %d: %s" % (out.returncode, out.stdout + out.stderr))
    b_closes = pam_lines("close_session", B)
    cb.quit()
    t0 = time.monotonic()
    ended = wait_for(lambda: session_of(B.pw_name) is None, 15)
    took = time.monotonic() - t0
    info("B's session ended %.1f s after its client quit" % took)
    check("B's session ends within 10 s of its client quitting (detached-timeout=3s, reloaded)",
          ended and 2.5 <= took <= 10.5 and "detached for longer than detached-timeout" in log(),
          "ended=%s after %.1f s\n%s" % (ended, took, log()[-800:]))
    check("and its application and PAM session are closed",
          wait_for(lambda: not alive(b_app) and pam_lines("close_session", B) == b_closes + 1, 5),
          open(pam_log).read())

    # --- 3 (end). A ends its own session ------------------------------------------
    ca3 = client(tokens["desk-a2"], "client-a3")
    r3 = wait_session("desk-a2", 30) if ca3.expect(r"state attached .* new=1", 30) else None
    check("A gets a new session with a second token", r3 is not None, ca3.out() + log()[-800:])
    if r3:
        closes = pam_lines("close_session", A)
        out = ctl_as(A, "end", r3["id"])
        check("wayrayctl end of A's own session as A works",
              out.returncode == 0 and wait_for(lambda: session_of("desk-a2") is None, 10),
              out.stdout + out.stderr + str(sessions()))
        check("PAM closed the session A ended (close_session)",
              wait_for(lambda: pam_lines("close_session", A) == closes + 1, 5), open(pam_log).read())
        told = ca3.expect(r"^(detached|refused):", 10)
        info("the client of the session A ended printed: %s" % (told.string if told else "nothing"))
        ca3.quit()

    # --- 10 (end). a broken configuration is refused on SIGHUP -----------------------
    write_config("detached-timeout=soon\nmax-sessions-per-user=1\n")
    daemon.send_signal(signal.SIGHUP)
    refused = wait_for(lambda: "reload refused" in log(), 10)
    line = [l for l in log().splitlines() if "reload refused" in l]
    check("a broken configuration is refused on SIGHUP, naming the file",
          refused and line and cfg in line[-1] and "detached-timeout" in line[-1], "\n".join(line) or log()[-800:])
    ca4 = client(tokens["desk-a2"], "client-a4")
    served = ca4.expect(r"state attached .* new=1", 30) is not None and ca4.expect(r"^first-frame", 20) is not None
    check("the daemon still serves a new client after the refused reload", served and daemon.poll() is None,
          ca4.out() + log()[-800:])
    out = refused_client(tokens["desk-a3"])
    check("the running configuration stays (max-sessions-per-user=1 still refuses A's third token)",
          out.returncode == 3 and "max-sessions-per-user" in out.stdout, out.stdout + out.stderr)

    # --- 11. shutdown ------------------------------------------------------------------
    r4 = wait_session("desk-a2", 10)
    closes = pam_lines("close_session", A)
    out = ctl("shutdown")
    try:
        daemon.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    check("wayrayctl shutdown ends every session and wayrayd exits 0",
          out.returncode == 0 and daemon.returncode == 0, "rc %s, daemon %s\n%s" % (
              out.returncode, daemon.returncode, log()[-800:]))
    check("the last session's application is gone and PAM closed it",
          r4 and wait_for(lambda: not alive(int(r4["pid"])) and pam_lines("close_session", A) == closes + 1, 10),
          str(r4) + open(pam_log).read())
    told = ca4.expect(r"^(detached|refused):", 10)
    info("the client attached at shutdown printed: %s" % (told.string if told else "nothing"))
    left = [p for p in state["starters"] if alive(p)]
    check("no session starter is left", wait_for(lambda: not any(alive(p) for p in state["starters"]), 10), str(left))
    check("no process of the test users is left after shutdown",
          wait_for(lambda: not any(pids_of_uid(pw.pw_uid) for pw in users.values()), 10),
          str({pw.pw_name: pids_of_uid(pw.pw_uid) for pw in users.values()}))
    check("the session records are gone", not os.listdir(records), str(os.listdir(records)))
    info("PAM log: " + " | ".join(open(pam_log).read().splitlines()))


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    started = time.monotonic()
    try:
        main()
    except Exception:
        import traceback
        traceback.print_exc(file=sys.stdout)
        check("the test ran to its end", False, "exception above")
    finally:
        passed = sum(1 for r in results if r)
        failed = len(results) - passed
        info("took %.0f s" % (time.monotonic() - started))
        print("%d passed, %d failed" % (passed, failed))
        sys.exit(1 if failed or not results else 0)
