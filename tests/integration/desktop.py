#!/usr/bin/env python3
"""The session's desktop (docs/desktop.md): weston and sway nested in
wayraysrc, as a real Unix account this test creates, reached by headless
wayray-clients over QUIC on loopback.

Checks what a user sees and does: the panel, typing into the terminal the
desktop started, programs started from the panel, two windows at their own
size side by side in the client's picture, an X11 program (xterm through
Xwayland) that shows and takes input; the kiosk policy for comparison.

Run by meson (`meson test desktop`) as root; prints one line per check and
closes with "N passed, N failed".
"""
import glob
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import accounts  # noqa: E402
import wrclient  # noqa: E402
from accounts import check, info, run, make_users, remove_users, open_path, pids_of_uid  # noqa: E402
from wrclient import parse_listing, read_ppm, wait_for  # noqa: E402

WAYRAYD, WAYRAYCTL, CLIENT = accounts.WAYRAYD, accounts.WAYRAYCTL, accounts.CLIENT
SIZE = (1024, 768)
COMMAND = "foot --override=cursor.blink=no --override=dpi-aware=no bash --norc --noprofile"

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def solid_window(colour, width, height):
    """A shell line showing a window of one colour at its own size."""
    return ("gst-launch-1.0 -q videotestsrc pattern=solid-color foreground-color=0xff%02x%02x%02x ! "
            "video/x-raw,width=%d,height=%d,framerate=5/1 ! waylandsink" % (colour + (width, height)))


def box_of(picture, colour, tolerance=8):
    """(count, x0, y0, x1, y1) of the pixels of @colour in a PPM picture."""
    w, h, px = picture
    n = 0
    x0 = y0 = 1 << 30
    x1 = y1 = -1
    r, g, b = colour
    for y in range(h):
        row = px[y * w * 3:(y + 1) * w * 3]
        for x in range(0, w * 3, 3):
            if abs(row[x] - r) <= tolerance and abs(row[x + 1] - g) <= tolerance and abs(row[x + 2] - b) <= tolerance:
                n += 1
                x0, y0, x1, y1 = min(x0, x // 3), min(y0, y), max(x1, x // 3), max(y1, y)
    return n, x0, y0, x1, y1


class Seat:
    """wayrayd as root with one desktop preset, its tokens mapped to @pw."""

    def __init__(self, tmp, name, port, desktop, pw, pam_dir, extra=""):
        self.tmp, self.name, self.port, self.pw = tmp, name, port, pw
        self.cfg = os.path.join(tmp, name + ".conf")
        self.control = os.path.join(tmp, name + "-seat", "control")
        with open(self.cfg, "w") as f:
            f.write("[daemon]\nlisten-address=127.0.0.1\nport=%d\ntoken-store=%s/%s-tokens\n"
                    "runtime-directory=%s/%s-seat\npam-service=%s\npam-directory=%s\n"
                    "[session]\ncommand=%s\ndesktop=%s\nsound=false\n%s"
                    % (port, tmp, name, tmp, name, accounts.PAM_SERVICE, pam_dir, COMMAND, desktop, extra))
        self.env = dict(os.environ, XDG_RUNTIME_DIR=os.path.join(tmp, "run"), XDG_CONFIG_HOME=os.path.join(tmp, "config"),
                        WAYRAY_PIPELINES_PATH=os.path.join(accounts.SOURCE, "pipelines"))
        self.env.setdefault("GST_REGISTRY", os.path.join(tmp, "registry.bin"))
        for k in ("WAYLAND_DISPLAY", "DISPLAY"):
            self.env.pop(k, None)
        os.makedirs(self.env["XDG_RUNTIME_DIR"], 0o700, exist_ok=True)
        self.logpath = os.path.join(tmp, name + "-wayrayd.log")
        self.daemon = None
        self.clients = []

    def start(self):
        self.token = run([WAYRAYCTL, "--config", self.cfg, "token-add", self.name, "--user", self.pw.pw_name],
                         env=self.env).stdout.strip()
        self.daemon = subprocess.Popen([WAYRAYD, "--config", self.cfg], env=self.env,
                                       stdout=open(self.logpath, "w"), stderr=subprocess.STDOUT)
        return wait_for(lambda: "ready on port" in self.log(), 20)

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def client(self, size="%dx%d" % SIZE, extra=()):
        c = wrclient.Client(CLIENT, self.env, self.port, self.token, size,
                            ["--headless", "--name", "desk-" + self.name] + list(extra))
        c.out = lambda: "\n".join(c.lines)
        self.clients.append(c)
        return c

    def sessions(self):
        return parse_listing(run([WAYRAYCTL, "--socket", self.control, "list"], env=self.env).stdout)

    def stop(self):
        for c in self.clients:
            c.quit()
        if self.daemon and self.daemon.poll() is None:
            run([WAYRAYCTL, "--socket", self.control, "shutdown"], env=self.env, timeout=30)
            try:
                self.daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()


def home_file(pw, name):
    try:
        with open(os.path.join(pw.pw_dir, name), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def snapshot(c, tmp, name):
    """The client's picture now (videos play: it is never idle)."""
    path = os.path.join(tmp, name + ".ppm")
    c.send("snapshot " + path)
    if not c.expect("^snapshot written$", 10):
        return None
    return read_ppm(path)


def type_and_wait(c, pw, line, name, want, timeout=15):
    """Types @line and Enter into the focused window; the user's file @name
    once it holds @want."""
    c.send("type " + line + "\\n")
    wait_for(lambda: want in home_file(pw, name), timeout=timeout)
    return home_file(pw, name)


def key_y_gives(c, pw, name):
    """What the key marked Y on a US keyboard (evdev code 21) types in the
    session's terminal, written to the user's file @name."""
    c.send("type echo")
    c.send("keycode 57")       # space: "type" ends at the line's last letter
    c.send("keycode 21")
    c.send("type  > ~/%s\\n" % name)
    wait_for(lambda: home_file(pw, name).strip() != "", 10)
    if not home_file(pw, name).strip():
        c.send("wait-idle 300")
        c.expect("^idle$", 5)
        c.send("snapshot /tmp/dt/key-%s.ppm" % name)
        c.expect("^snapshot", 5)
    return home_file(pw, name).strip()


def processes_of(pw, comm):
    out = run(["pgrep", "-u", str(pw.pw_uid), "-x", comm]).stdout.split()
    return [int(p) for p in out]


def kill_processes(pw, *comms):
    """Kills what @pw still runs of the programs @comms."""
    for comm in comms:
        for p in processes_of(pw, comm):
            try:
                os.kill(p, 9)
            except OSError:
                pass


def sway_socket(seat, pw):
    """The session's sway IPC socket, in its runtime directory ("" if none)."""
    pid = processes_of(pw, "sway")
    found = glob.glob(os.path.join(seat.tmp, seat.name + "-seat", "**", "sway-ipc.%d.%d.sock"
                                   % (pw.pw_uid, pid[0])), recursive=True) if pid else []
    return found[0] if found else ""


def display_of(pid):
    """DISPLAY in the environment of process @pid."""
    try:
        env = open("/proc/%d/environ" % pid, "rb").read().split(b"\0")
    except OSError:
        return ""
    for e in env:
        if e.startswith(b"DISPLAY="):
            return e[8:].decode()
    return ""


def environ_of(pid):
    try:
        env = open("/proc/%d/environ" % pid, "rb").read().split(b"\0")
    except OSError:
        return {}
    return dict(e.decode(errors="replace").split("=", 1) for e in env if b"=" in e)


def nested_clipboard(c, pw):
    """sway's clipboard is the client's, both ways (through the session's
    bridge), with wl-copy and wl-paste run inside sway as the user."""
    foot = processes_of(pw, "foot")
    fenv = environ_of(foot[0]) if foot else {}
    uenv = ["%s=%s" % (k, fenv.get(k, "")) for k in ("WAYLAND_DISPLAY", "XDG_RUNTIME_DIR")] + ["HOME=" + pw.pw_dir]

    def paste(*args):
        return run(["runuser", "-u", pw.pw_name, "--", "env"] + uenv + ["wl-paste", "-n"] + list(args))

    c.send("clipboard-set to-sway")
    c.expect("^clipboard-set$", 5)
    check("sway: the client's clipboard pastes inside sway",
          wait_for(lambda: paste().stdout == "to-sway", 10), paste().stdout + paste().stderr)
    c.send("primary-set primary-to-sway")
    c.expect("^primary-set$", 5)
    check("sway: the client's primary selection pastes inside sway",
          wait_for(lambda: paste("--primary").stdout == "primary-to-sway", 10), paste("--primary").stderr)
    p = subprocess.Popen(["runuser", "-u", pw.pw_name, "--", "env"] + uenv + ["wl-copy", "from-sway"])
    p.wait(timeout=10)
    c.expect(r"^clipboard-offer text/plain", 10)

    def got():
        c.send("clipboard-get")
        m = c.expect(r"^clipboard (.*)$|^clipboard-error", 10)
        return m and m.group(0) == "clipboard from-sway"

    check("sway: a copy inside sway pastes at the client", wait_for(got, 10, 0.5), c.out()[-300:])


def desktop_session(tmp, pw, pam_dir, port, desktop, other):
    """One desktop's whole story, as user @pw."""
    seat = Seat(tmp, desktop, port, desktop, pw, pam_dir)
    try:
        if not check("%s: wayrayd starts" % desktop, seat.start(), seat.log()[-2000:]):
            return
        c = seat.client(extra=["--keymap-layout", "de"])
        check("%s: the client shows the session's first frame" % desktop,
              c.expect(r"state attached .* new=1", 30) and c.expect(r"^first-frame", 30), c.out())
        # The desktop ran the session command (a terminal) as the user.
        check("%s: the desktop starts the session command in it, as the user" % desktop,
              wait_for(lambda: processes_of(pw, "foot"), 20), seat.log()[-2000:])
        prog = "weston" if desktop == "weston" else "sway"
        check("%s: %s runs as the session's user" % (desktop, prog), processes_of(pw, prog),
              run(["ps", "-eo", "user,pid,args"]).stdout[-3000:])
        time.sleep(1.5)        # the terminal mapped and took the keyboard focus
        out = type_and_wait(c, pw, "echo typed-$((6*7)) > ~/typed", "typed", "typed-42")
        check("%s: typing reaches the terminal the desktop started" % desktop, "typed-42" in out, out)
        got = key_y_gives(c, pw, "key-de")
        check("%s: the client's layout (de) is the session's: the key marked Y types z" % desktop, got == "z",
              repr(got) + seat.log()[-600:])
        if desktop == "sway":
            nested_clipboard(c, pw)

        pic = snapshot(c, tmp, desktop + "-desktop")
        w, h, px = pic if pic else (0, 0, b"")
        check("%s: the client's picture is the session's size" % desktop, (w, h) == SIZE, "%dx%d" % (w, h))
        if desktop == "weston":
            # The panel: a dark bar along the top over the desktop's blue.
            top = px[(10 * w + w // 2) * 3:(10 * w + w // 2) * 3 + 3]
            back = px[((h - 20) * w + 10) * 3:((h - 20) * w + 10) * 3 + 3]
            check("weston: a panel along the top, the desktop's background below",
                  max(top) < 40 and tuple(back) == (0x1f, 0x3a, 0x52), "%s %s" % (list(top), list(back)))
            # Its first launcher starts a terminal.
            before = len(processes_of(pw, "foot"))
            c.send("click 21 15")
            check("weston: the panel's terminal launcher starts another terminal",
                  wait_for(lambda: len(processes_of(pw, "foot")) == before + 1, 15),
                  "%d foot before" % before)

        # Two windows of their own size, both in the picture.
        for colour, name in ((RED, "red"), (BLUE, "blue")):
            with open(os.path.join(pw.pw_dir, name + ".sh"), "w") as f:
                f.write("exec 2> ~/%s.log\n%s\n" % (name, solid_window(colour, 320, 240)))
        # And an X11 program after them, so that it has the keyboard focus.
        with open(os.path.join(pw.pw_dir, "x11.sh"), "w") as f:
            f.write("exec xterm -geometry 40x8 -bg '#00ff00' -fg black -e sh -c 'read line; echo \"$line\" > ~/x11'\n")
        c.send("type sh ~/red.sh & sh ~/blue.sh & (sleep 5; exec sh ~/x11.sh 2> ~/x11.log) &\\n")
        want = (lambda n: n >= 0.25 * 320 * 240)

        def both():
            p = snapshot(c, tmp, desktop + "-windows")
            return p and want(box_of(p, RED)[0]) and want(box_of(p, BLUE)[0]) and p

        pic = None
        wait_for(lambda: both(), 30, 0.5)
        pic = snapshot(c, tmp, desktop + "-windows")
        red, blue = (box_of(pic, RED), box_of(pic, BLUE)) if pic else ((0,) * 5, (0,) * 5)
        check("%s: two windows are both in the client's picture" % desktop, want(red[0]) and want(blue[0]),
              "red %s blue %s; %s" % (red, blue, home_file(pw, "red.log")[-1000:]))
        if desktop == "weston":
            # Floating windows keep their size: the top one is 320x240, whole.
            top = max((red, blue), key=lambda b: b[0])
            check("weston: a 320x240 window stays 320x240 (not blown up to the screen)",
                  top[0] == 320 * 240 and (top[3] - top[1] + 1, top[4] - top[2] + 1) == (320, 240), str(top))
        else:
            # Tiled side by side: neither covers the other.
            check("sway: the two windows are tiled side by side",
                  red[0] > 0 and blue[0] > 0 and (red[3] < blue[1] or blue[3] < red[1]), "red %s blue %s" % (red, blue))

        # An X11 program through Xwayland: it shows, and takes what is typed.
        ok = wait_for(lambda: processes_of(pw, "xterm") and processes_of(pw, "Xwayland"), 20)
        check("%s: xterm starts on the desktop's Xwayland" % desktop, ok,
              home_file(pw, "x11.log")[-1500:])

        def green():
            p = snapshot(c, tmp, desktop + "-xterm")
            return p and box_of(p, GREEN)[0] > 100 * 50

        check("%s: the X11 window is in the client's picture" % desktop, wait_for(green, 20, 0.5))
        xterms = processes_of(pw, "xterm")
        display = display_of(xterms[0]) if xterms else ""
        stranger = run(["runuser", "-u", other.pw_name, "--", "env", "DISPLAY=" + display, "xdpyinfo"], timeout=20)
        check("%s: another user cannot connect to the session's Xwayland (%s)" % (desktop, display),
              display != "" and stranger.returncode != 0 and "Authorization required" in stranger.stderr,
              stranger.stderr[-300:])
        time.sleep(0.5)
        out = type_and_wait(c, pw, "from-x11-OK", "x11", "from-x11")
        check("%s: the X11 window takes what is typed" % desktop, out.strip() == "from-x11-OK", repr(out))

        # Live resize: the client's screen changes, the session and its
        # desktop follow without a reconnect; weston 10 cannot change its
        # screen's size, so a weston session keeps its own.
        c.send("resize 1280x720")
        want_size = (1280, 720) if desktop == "sway" else SIZE
        if desktop == "weston":
            check("weston: the session says it keeps its size",
                  wait_for(lambda: "stays 1024x768, not 1280x720: its desktop cannot change its screen size"
                           in seat.log(), 10), seat.log()[-1000:])
        grown = lambda: (snapshot(c, tmp, desktop + "-resized") or (0, 0, b""))[:2] == want_size  # noqa: E731
        check("%s: after resize 1280x720 the client's picture is %dx%d" % ((desktop,) + want_size),
              wait_for(grown, 15, 0.3), seat.log()[-1000:])
        rows = seat.sessions()
        check("%s: the session is listed at that size, the client still attached" % desktop,
              rows and rows[0].get("size") == "%dx%d" % want_size and rows[0].get("state") == "attached" and
              "state detached" not in c.out(), str(rows))
        shot = os.path.join(tmp, desktop + "-grim.ppm")
        sock = rows[0].get("socket", "") if rows else ""
        ok = run(["grim", "-t", "ppm", shot], env=dict(seat.env, WAYLAND_DISPLAY=sock)).returncode == 0
        check("%s: grim inside the session returns %dx%d" % ((desktop,) + want_size),
              ok and read_ppm(shot)[:2] == want_size)
        wants = [(0x1f, 0x3a, 0x52)] if desktop == "weston" else [RED, BLUE]
        corner = ()

        def right_edge():
            # The windows redraw at their new size at their own pace (the
            # videos at 5 frames a second).
            nonlocal corner
            w, h, px = snapshot(c, tmp, desktop + "-resized") or (0, 0, b"")
            y = h - 100 if desktop == "weston" else h // 2       # sway letterboxes the tiled video
            corner = tuple(px[(y * w + w - 10) * 3:(y * w + w - 10) * 3 + 3]) if w else ()
            return corner in wants

        check("%s: the desktop draws to the picture's right edge" % desktop, wait_for(right_edge, 10, 0.5),
              "%s near the bottom right" % (corner,))

        if desktop == "sway":
            # HiDPI: sway scales its own output; wayraysrc stays at 1.
            c.quit()
            c = seat.client(extra=["--scale", "2"])
            c.expect(r"^first-frame", 30)
            sock = sway_socket(seat, pw)

            def sway_scale():
                out = run(["runuser", "-u", pw.pw_name, "--", "swaymsg", "-s", sock, "-t", "get_outputs", "-r"])
                m = re.search(r'"scale": ([0-9.]+)', out.stdout)
                return float(m.group(1)) if m else 0.0

            check("sway: a client at --scale 2 makes sway's output scale 2", sock and wait_for(lambda: sway_scale() == 2.0, 10),
                  "%s: %s" % (sock, seat.log()[-400:]))
    finally:
        seat.stop()
        kill_processes(pw, "foot", "xterm")
    check("%s: nothing of the session is left when the seat shuts down" % desktop,
          wait_for(lambda: not processes_of(pw, "weston") and not processes_of(pw, "sway")
                   and not processes_of(pw, "Xwayland"), 15),
          run(["ps", "-u", pw.pw_name, "-o", "pid,args"]).stdout)


def configuration(tmp):
    """What an operator sees of the setting: --check names the desktop,
    a wrong value is refused with the reason."""
    cfg = os.path.join(tmp, "check.conf")
    env = dict(os.environ, XDG_CONFIG_HOME=os.path.join(tmp, "config"),
               WAYRAY_PIPELINES_PATH=os.path.join(accounts.SOURCE, "pipelines"))
    for value, rc, text in (("weston", 0, "desktop: weston nested in every session"),
                            ("sway", 0, "desktop: sway nested in every session"),
                            ("kiosk", 0, "desktop: kiosk (every window full screen; runs: foot"),
                            ("gnome", 2, "[session] desktop must be weston, sway or kiosk, not 'gnome'")):
        with open(cfg, "w") as f:
            f.write("[session]\ndesktop=%s\nsound=false\n" % value)
        out = run([WAYRAYD, "--config", cfg, "--check"], env=env)
        check("wayrayd --check with desktop=%s: %s" % (value, text), out.returncode == rc and text in out.stdout + out.stderr,
              "rc %d: %s%s" % (out.returncode, out.stdout, out.stderr))
    with open(cfg, "w") as f:
        f.write("[session]\ndesktop=kiosk\ndesktop-config=/etc/weston.ini\n")
    out = run([WAYRAYD, "--config", cfg, "--check"], env=env)
    check("desktop-config with the kiosk policy is refused",
          out.returncode == 2 and "desktop-config is for desktop=weston or sway, not kiosk" in out.stderr, out.stderr)
    with open(cfg, "w") as f:
        f.write("[session]\nkeymap-layout=us;rm\n")
    out = run([WAYRAYD, "--config", cfg, "--check"], env=env)
    check("a keymap-layout that is no XKB name is refused",
          out.returncode == 2 and "keymap-layout 'us;rm' (variant '', options '') is not made of XKB names" in out.stderr, out.stderr)


def clipboard_checks(seat, c, tmp, pw):
    """The clipboard and primary selection both ways between the session
    (wl-copy, wl-paste in it, as its user) and the headless client: text,
    PNG, the size limit, and nothing of the client's left after it goes."""
    rows = seat.sessions()
    sock = rows[0].get("socket", "") if rows else ""
    senv = {"PATH": "/usr/bin:/bin", "WAYLAND_DISPLAY": sock, "HOME": pw.pw_dir}

    def in_session(args, **kw):
        return run(["runuser", "-u", pw.pw_name, "--", "env"] + ["%s=%s" % kv for kv in senv.items()] + args,
                   **kw)

    def copy_in_session(args, data):
        # wl-copy stays to serve pastes; it goes when something else is copied.
        p = subprocess.Popen(["runuser", "-u", pw.pw_name, "--", "env"] + ["%s=%s" % kv for kv in senv.items()]
                             + ["wl-copy"] + args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        p.stdin.write(data)
        p.stdin.close()
        return p

    text = "grüße, κόσμε\\nsecond line"
    c.send("clipboard-set " + text)
    c.expect("^clipboard-set$", 5)
    got = None
    for _ in range(20):
        out = in_session(["wl-paste", "-n"])
        if out.returncode == 0:
            got = out.stdout
            break
        time.sleep(0.2)
    check("clipboard: the client's text (UTF-8, two lines) pastes in the session",
          got == "grüße, κόσμε\nsecond line", repr(got))
    c.send("primary-set primary-from-client")
    c.expect("^primary-set$", 5)
    time.sleep(0.3)
    out = in_session(["wl-paste", "-n", "--primary"])
    check("primary selection: the client's pastes in the session", out.stdout == "primary-from-client",
          out.stdout + out.stderr)

    copiers = [copy_in_session([], "from the session, ünïcode\n".encode())]
    check("clipboard: a copy in the session is offered to the client (types only)",
          c.expect(r"^clipboard-offer text/plain;charset=utf-8$", 10) is not None, c.out()[-300:])
    c.send("clipboard-get")
    m = c.expect(r"^clipboard (.*)$", 15)
    check("clipboard: the client pastes the session's text", m and m.group(1) == "from the session, ünïcode\\n",
          c.out()[-300:])
    copiers.append(copy_in_session(["--primary"], b"primary-from-session"))
    c.expect(r"^primary-offer ", 10)
    c.send("primary-get")
    m = c.expect(r"^primary (.*)$", 15)
    check("primary selection: the client pastes the session's", m and m.group(1) == "primary-from-session",
          c.out()[-300:])

    # A PNG both ways, byte for byte.
    png = os.path.join(tmp, "pixel.png")
    subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=1", "pattern=smpte", "!",
                    "video/x-raw,width=64,height=48", "!", "pngenc", "!", "filesink", "location=" + png], check=True)
    want = open(png, "rb").read()
    c.send("clipboard-set-file image/png " + png)
    c.expect("^clipboard-set$", 5)
    time.sleep(0.3)
    out = subprocess.run(["runuser", "-u", pw.pw_name, "--", "env"] + ["%s=%s" % kv for kv in senv.items()]
                         + ["wl-paste", "--type", "image/png"], capture_output=True, timeout=30)
    check("clipboard: the client's PNG pastes in the session byte for byte", out.stdout == want,
          "%d bytes, want %d" % (len(out.stdout), len(want)))
    copiers.append(copy_in_session(["--type", "image/png"], want))
    c.expect(r"^clipboard-offer image/png$", 10)
    back = os.path.join(tmp, "back.png")
    c.send("clipboard-get-file image/png " + back)
    m = c.expect(r"^clipboard-(file|error) (.*)$", 15)
    check("clipboard: the session's PNG reaches the client byte for byte",
          m and m.group(1) == "file" and os.path.exists(back) and open(back, "rb").read() == want, c.out()[-300:])

    # The limit: 16 MiB, each way, with the reason.
    big = os.path.join(tmp, "big.txt")
    with open(big, "wb") as f:
        f.write(b"x" * (17 * 1024 * 1024))
    c.send("clipboard-set-file text/plain;charset=utf-8 " + big)
    check("clipboard: the client refuses to offer more than 16 MiB",
          c.expect(r"^clipboard-error cannot read .* \(or larger than 16 MiB\)", 10) is not None, c.out()[-300:])
    copiers.append(copy_in_session([], b"y" * (17 * 1024 * 1024)))
    c.expect(r"^clipboard-offer text/plain", 10)
    c.send("clipboard-get")
    check("clipboard: a session's copy over 16 MiB is refused with the reason",
          c.expect(r"^clipboard-error the other side: larger than 16 MiB", 20) is not None, c.out()[-300:])

    # The client's selection leaves with it.
    c.send("clipboard-set bye")
    c.expect("^clipboard-set$", 5)
    time.sleep(0.3)
    c.quit()
    time.sleep(1)
    out = in_session(["wl-paste", "-n"])
    check("clipboard: once the client is gone, its selection is no longer pasted in the session",
          out.returncode != 0 and out.stdout == "", out.stdout[:100] + out.stderr)
    for p in copiers:
        p.kill()
        p.wait()


def kiosk_session(tmp, pw, pam_dir, port, other):
    """The kiosk policy follows the client's screen too: the terminal
    fills the new size."""
    seat = Seat(tmp, "kiosk", port, "kiosk", pw, pam_dir)
    try:
        if not check("kiosk: wayrayd starts", seat.start(), seat.log()[-2000:]):
            return
        c = seat.client()
        check("kiosk: the client shows the session's first frame",
              c.expect(r"state attached .* new=1", 30) and c.expect(r"^first-frame", 30), c.out())
        wait_for(lambda: processes_of(pw, "foot"), 20)
        time.sleep(1)
        before = type_and_wait(c, pw, "tput cols > ~/cols1", "cols1", "\n").strip()
        c.send("resize 1280x720")
        grown = lambda: (snapshot(c, tmp, "kiosk-resized") or (0, 0, b""))[:2] == (1280, 720)  # noqa: E731
        check("kiosk: after resize 1280x720 the client's picture is 1280x720", wait_for(grown, 15, 0.3),
              seat.log()[-1000:])
        time.sleep(0.5)
        after = type_and_wait(c, pw, "tput cols > ~/cols2", "cols2", "\n").strip()
        check("kiosk: the terminal was resized with the session (its columns grew)",
              before.isdigit() and after.isdigit() and int(after) > int(before) * 1.2, "%r then %r" % (before, after))
        check("kiosk: the daemon logs the resize", "resized to 1280x720 by its client" in seat.log(), seat.log()[-800:])
        got = key_y_gives(c, pw, "key-us")
        check("kiosk: with the seat's layout (us) the key marked Y types y", got == "y", repr(got))
        c.quit()
        c = seat.client(extra=["--keymap-layout", "de", "--keymap-variant", "nodeadkeys"])
        check("kiosk: a second client takes the session over",
              c.expect(r"state attached .* new=0", 30) and c.expect(r"^first-frame", 30), c.out())
        got = key_y_gives(c, pw, "key-de")
        check("kiosk: the second client's layout (de) is the session's: the key marked Y types z", got == "z",
              repr(got) + seat.log()[-600:])
        check("kiosk: the daemon logs the client's layout",
              "keyboard layout de(nodeadkeys) (the client's)" in seat.log(), seat.log()[-600:])
        c.quit()
        c = seat.client(extra=["--keymap-layout", "none"])
        c.expect(r"^first-frame", 30)
        got = key_y_gives(c, pw, "key-default")
        check("kiosk: a client that says no layout gets the session's default, not the last client's",
              got == "y" and "keyboard layout us (the session's default)" in seat.log(), repr(got))
        c.quit()
        c = seat.client(extra=["--keymap-layout", "de;rm -rf"])
        c.expect(r"^first-frame", 30)
        check("kiosk: a layout that is no XKB name is ignored, with a log line",
              wait_for(lambda: "ignoring its keymap: not XKB names" in seat.log(), 10), seat.log()[-600:])
        c.send("resize 20000x10")
        check("kiosk: a size out of range is refused by the client", c.expect(r"^error: resize WxH", 5) is not None,
              c.out()[-300:])
        # X11 programs in the kiosk policy: wayraysrc's own Xwayland.
        with open(os.path.join(pw.pw_dir, "kx11.sh"), "w") as f:
            f.write("exec xterm -bg '#00ff00' -fg black -e sh -c 'read line; echo \"$line\" > ~/kx11'\n")
        c.send("type sh ~/kx11.sh 2> ~/kx11.log &\\n")
        ok = wait_for(lambda: processes_of(pw, "xterm") and processes_of(pw, "Xwayland"), 20)
        check("kiosk: xterm starts on the session's Xwayland", ok, home_file(pw, "kx11.log")[-800:])

        def green():
            p = snapshot(c, tmp, "kiosk-xterm")
            return p and box_of(p, GREEN)[0] > 0.8 * p[0] * p[1]

        check("kiosk: the X11 window fills the client's picture", wait_for(green, 20, 0.5))
        xterms = processes_of(pw, "xterm")
        display = display_of(xterms[0]) if xterms else ""
        stranger = run(["runuser", "-u", other.pw_name, "--", "env", "DISPLAY=" + display, "xdpyinfo"], timeout=20)
        check("kiosk: another user cannot connect to the session's Xwayland (%s)" % display,
              display != "" and stranger.returncode != 0, stranger.stderr[-300:])
        out = type_and_wait(c, pw, "typed-in-x11", "kx11", "typed-in-x11")
        check("kiosk: the X11 window takes what is typed", out.strip() == "typed-in-x11", repr(out))
        wait_for(lambda: not processes_of(pw, "xterm"), 10)
        time.sleep(0.5)

        clipboard_checks(seat, c, tmp, pw)

        # HiDPI: a client at scale 2 gets an output of scale 2; the
        # terminal draws its text twice the size (about half the columns).
        c = seat.client(extra=["--scale", "2"])
        c.expect(r"^first-frame", 30)
        rows = seat.sessions()
        sock = rows[0].get("socket", "") if rows else ""
        wait_for(lambda: "scale 2 (the client's)" in seat.log(), 10)
        info_out = run(["wayland-info"], env=dict(seat.env, WAYLAND_DISPLAY=sock)).stdout
        check("kiosk: a client at --scale 2 gives the session's output scale 2",
              re.search(r"scale: 2", info_out) is not None and "scale 2 (the client's)" in seat.log(),
              info_out[-600:])
        time.sleep(1)
        cols = type_and_wait(c, pw, "tput cols > ~/cols3", "cols3", "\n").strip()
        # About half: the font is rasterized at twice the size, its cells
        # rounded to whole pixels.
        check("kiosk: at scale 2 the terminal has about half the columns of scale 1 at the same size",
              cols.isdigit() and before.isdigit() and 0.45 <= int(cols) / int(before) <= 0.6,
              "%r at 2, %r at 1" % (cols, before))
        c.quit()
        c = seat.client()
        c.expect(r"^first-frame", 30)
        check("kiosk: the next client at scale 1 gets scale 1 back",
              wait_for(lambda: "scale 1 (the client's)" in seat.log(), 10), seat.log()[-400:])
    finally:
        seat.stop()
        kill_processes(pw, "foot")

MON = (640, 480)


def halves(p):
    """Where red is in a picture of two monitors side by side: the red
    pixels on the first and on the second monitor."""
    w, h, px = p
    left = box_of((MON[0], h, b"".join(px[y * w * 3:y * w * 3 + MON[0] * 3] for y in range(h))), RED)[0]
    right = box_of((w - MON[0], h, b"".join(px[y * w * 3 + MON[0] * 3:(y + 1) * w * 3] for y in range(h))), RED)[0]
    return left, right


def outputs_listed(seat, env_extra=None):
    """wayland-info in the session: the outputs' names and logical places."""
    rows = seat.sessions()
    sock = rows[0].get("socket", "") if rows else ""
    out = run(["wayland-info"], env=dict(seat.env, WAYLAND_DISPLAY=sock, **(env_extra or {}))).stdout
    return out.count("interface: 'wl_output'"), re.findall(r"logical_x: (\d+), logical_y: (\d+)", out), out


def monitors_session(tmp, pw, pam_dir, port, desktop):
    """A client with two monitors: the session has two outputs laid out the
    same, windows fill one monitor each and move between them."""
    two = "%dx%d,%dx%d" % (MON + MON)
    seat = Seat(tmp, "mon-" + desktop, port, desktop, pw, pam_dir)
    try:
        if not check("%s, two monitors: wayrayd starts" % desktop, seat.start(), seat.log()[-2000:]):
            return
        c = seat.client(size=two)
        check("%s, two monitors: the client shows the session's first frame" % desktop,
              c.expect(r"state attached .* new=1", 30) and c.expect(r"^first-frame", 30), c.out())
        wait_for(lambda: processes_of(pw, "foot"), 20)
        time.sleep(1.5)
        p = snapshot(c, tmp, desktop + "-two")
        check("%s, two monitors: the picture spans both (%dx%d)" % (desktop, 2 * MON[0], MON[1]),
              p is not None and p[:2] == (2 * MON[0], MON[1]), p and "%dx%d" % p[:2])
        check("%s, two monitors: the daemon logs the layout" % desktop,
              "2 monitors, 640x480+0+0,640x480+640+0" in seat.log(), seat.log()[-600:])
        if desktop == "kiosk":
            n, places, out = outputs_listed(seat)
            check("kiosk, two monitors: applications see two outputs, the second at x=640",
                  n == 2 and ("640", "0") in places, out[-1500:])
            c.send("type " + solid_window(RED, 320, 240) + " &\\n")
            on_second = lambda: (lambda s: s and s[0] < 50 and s[1] > 0.9 * MON[0] * MON[1])(  # noqa: E731
                halves(snapshot(c, tmp, "kiosk-red") or (2 * MON[0], MON[1], bytes(2 * MON[0] * MON[1] * 3))))
            check("kiosk, two monitors: a new window fills the empty second monitor, not the first",
                  wait_for(on_second, 20, 0.5), seat.log()[-600:])
            c.send("resize %dx%d" % MON)
            one = lambda: (lambda s: s and s[:2] == MON)(snapshot(c, tmp, "kiosk-one"))  # noqa: E731
            ok = wait_for(one, 15, 0.5)
            time.sleep(0.5)
            p = snapshot(c, tmp, "kiosk-one")
            check("kiosk: down to one monitor, it keeps showing the first monitor's window "
                  "(the second's goes behind it)", ok and p and box_of(p, RED)[0] < 50, seat.log()[-600:])
            n, places, out = outputs_listed(seat)
            check("kiosk: applications see one output again", n == 1, out[-800:])
            c.send("resize " + two)
            back = lambda: (lambda s: s[0] < 50 and s[1] > 0.9 * MON[0] * MON[1])(  # noqa: E731
                halves(snapshot(c, tmp, "kiosk-two-again") or (2 * MON[0], MON[1], bytes(2 * MON[0] * MON[1] * 3))))
            check("kiosk: back on two monitors, the window behind comes back to the second",
                  wait_for(back, 15, 0.5), seat.log()[-600:])
            n, places, out = outputs_listed(seat)
            check("kiosk: applications see two outputs again", n == 2, out[-800:])
        else:
            sock = sway_socket(seat, pw)

            def sway(*args):
                return run(["runuser", "-u", pw.pw_name, "--", "swaymsg", "-s", sock] + list(args))

            def active_outputs():
                try:
                    outputs = json.loads(sway("-t", "get_outputs", "-r").stdout)
                except ValueError:
                    return []
                return sorted(o["name"] for o in outputs if o.get("active"))

            check("sway, two monitors: sway has two outputs", wait_for(lambda: len(active_outputs()) == 2, 15),
                  sway("-t", "get_outputs").stdout[-800:])
            c.send("type " + solid_window(RED, 320, 240) + " &\\n")
            wait_for(lambda: (lambda s: s[0] + s[1] > 1000)(halves(snapshot(c, tmp, "sway-red"))), 20, 0.5)
            before = halves(snapshot(c, tmp, "sway-red"))
            moved = sway("move", "container", "to", "output", "WL-2")
            on_second = lambda: (lambda s: s[0] < 50 and s[1] > 1000)(halves(snapshot(c, tmp, "sway-moved")))  # noqa: E731
            check("sway, two monitors: a window moved to the second output shows on the second monitor",
                  before[0] > 1000 and wait_for(on_second, 15, 0.5),
                  "before %r, %s %s" % (before, moved.stdout, moved.stderr))
            c.send("resize %dx%d" % MON)
            one = lambda: (lambda s: s and s[:2] == MON and box_of(s, RED)[0] > 1000)(  # noqa: E731
                snapshot(c, tmp, "sway-one"))
            check("sway: down to one monitor, the second output's workspace (the window) moves to the first",
                  wait_for(one, 15, 0.5), seat.log()[-600:])
            c.send("resize " + two)
            check("sway: two monitors again, sway has two outputs",
                  wait_for(lambda: len(active_outputs()) == 2, 15), sway("-t", "get_outputs").stdout[-600:])
        c.send("resize 100x100+0+0,100x100+50+0")
        check("%s: overlapping monitors are refused by the client" % desktop,
              c.expect(r"^error: resize WxH.*overlap", 5) is not None, c.out()[-300:])
    finally:
        seat.stop()
        kill_processes(pw, "foot", "gst-launch-1.0")


def main():
    if os.geteuid() != 0:
        check("the desktop test runs as root", False, "it creates a Unix account and runs wayrayd as root")
        return 1
    tag = secrets.token_hex(3)
    tmp = tempfile.mkdtemp(prefix="wayray-desk-")
    os.chmod(tmp, 0o755)
    changed, users = {}, {}
    port = 36000 + (os.getpid() % 200) * 10
    only = sys.argv[1:]
    try:
        open_path([accounts.BUILD, os.path.join(accounts.SOURCE, "pipelines")], changed)
        configuration(tmp)
        make_users(tag, "do", users)
        pam_dir = os.path.join(tmp, "pam.d")
        os.mkdir(pam_dir, 0o755)
        with open(os.path.join(pam_dir, accounts.PAM_SERVICE), "w") as f:
            f.write("auth required pam_unix.so\naccount required pam_unix.so\nsession required pam_permit.so\nsession optional pam_systemd.so\n")
        for i, desktop in enumerate(("weston", "sway")):
            if not only or desktop in only:
                desktop_session(tmp, users["d"], pam_dir, port + i * 3, desktop, users["o"])
        if not only or "kiosk" in only:
            kiosk_session(tmp, users["d"], pam_dir, port + 6, users["o"])
        for i, desktop in enumerate(("kiosk", "sway")):
            if not only or "monitors" in only or desktop + "-monitors" in only:
                monitors_session(tmp, users["d"], pam_dir, port + 9 + i * 3, desktop)
    finally:
        remove_users(users)
        for d, mode in changed.items():
            os.chmod(d, mode)
    check("the test user is gone with its processes", all(not pids_of_uid(pw.pw_uid) for pw in users.values()))
    passed = sum(1 for r in accounts.results if r)
    failed = len(accounts.results) - passed
    print("desktop: %d passed, %d failed" % (passed, failed))
    if failed == 0 and not os.environ.get("WAYRAY_TEST_KEEP"):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        info("kept %s for inspection" % tmp)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
