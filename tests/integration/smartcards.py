#!/usr/bin/env python3
"""Hot-desking with smart cards: a real pcscd with vsmartcard's virtual
readers, virtual ISO 7816 cards (tests/smartcard/wrcard.py), wayrayd with
real foot sessions, two headless wayray-clients with --smartcard (two
terminals, a reader each), wayrayctl card-read and card-add.

Run by meson (`meson test smartcards`) with the build tree in the
environment; prints one line per check and closes with "N passed, N failed".
"""
import hashlib
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402
import wrclient  # noqa: E402
import wrpcsc  # noqa: E402
from wrclient import parse_listing, wait_for  # noqa: E402

from e2e import BUILD, CLIENT, ME, SOURCE, WAYRAYCTL, WAYRAYD, check, results  # noqa: E402
CARD_A = "8949012345678901234"
CARD_B = "8949000011112222333"


class Terminal(wrclient.Client):
    """A headless client logging in with the card in its reader."""

    def __init__(self, env, port, reader, size, name):
        super().__init__(CLIENT, env, port, None, size,
                         ["--headless", "--name", name, "--smartcard=" + reader])

    def picture_gone(self, tmp):
        """True when the client has no picture of the session left."""
        self.send("snapshot " + os.path.join(tmp, "gone.ppm"))
        return self.expect(r"^snapshot (written|failed)", 10) is not None and \
            self.lines[-1] == "snapshot failed: no frame yet"


def processes_of(tmp):
    """Processes whose runtime directory is under @tmp: the sessions'
    applications and workers."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            env = open("/proc/%s/environ" % p, "rb").read()
        except OSError:
            continue
        if ("XDG_RUNTIME_DIR=" + os.path.join(tmp, "seat") + "/").encode() in env:
            found.append(int(p))
    return found


def drain(pipe, quiet=0.5):
    """What @pipe has to say until it is quiet for @quiet seconds."""
    out = b""
    while select.select([pipe], [], [], quiet)[0]:
        chunk = os.read(pipe.fileno(), 65536)
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace")


def window_pin(env, port, pcscd, key, tmp, terminals):
    """The window client (GTK, on a virtual X server) with a PIN-protected
    card: the PIN typed into its window (an entry over the picture) logs
    in, and taking the card out leaves the window asking for a card."""
    number = next(n for n in range(60, 200)
                  if not os.path.exists("/tmp/.X%d-lock" % n) and not os.path.exists("/tmp/.X11-unix/X%d" % n))
    envx = dict(env, DISPLAY=":%d" % number)
    xvfb = subprocess.Popen(["Xvfb", envx["DISPLAY"], "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists("/tmp/.X11-unix/X%d" % number), 10)
        wc = wrclient.Client(CLIENT, envx, port, None, "800x600", ["--smartcard=" + wrpcsc.READERS[1], "--name",
                                                                   "window"], stdin=False)
        terminals.append(wc)
        wc.expect(r"^state insert-card$", 30)
        pcscd.insert(1, piv=key, key_slot="9a", pin="123456")
        check("the window client asks for the card's PIN", wc.expect(r"^state pin-wanted$", 30) is not None,
              "\n".join(wc.lines[-6:]))
        wid = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "WayRay"], env=envx,
                             capture_output=True, text=True).stdout.split()
        if wid:
            subprocess.run(["xdotool", "windowactivate", "--sync", wid[0]], env=envx, capture_output=True)
            time.sleep(0.3)
            subprocess.run(["xdotool", "type", "--delay", "40", "123456"], env=envx)
            subprocess.run(["xdotool", "key", "Return"], env=envx)
        check("the PIN typed into its window logs the card in (its session, reattached)",
              wid != [] and wc.expect(r"^pin accepted$", 20) is not None and
              wc.expect(r"^state attached .* new=0", 30) is not None and wc.expect(r"^first-frame", 20) is not None,
              "\n".join(wc.lines[-8:]))
        pcscd.remove(1)
        check("taking the card out, the window asks for a card again",
              wc.expect(r"^state insert-card$", 10) is not None, "\n".join(wc.lines[-4:]))
        wc.quit()
    finally:
        xvfb.terminate()
        xvfb.wait()


def main():
    why = wrpcsc.missing()
    if why:
        print("FAILED the smart card test can run: " + why)
        print("0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="wayray-cards-")
    run = os.path.join(tmp, "run")
    os.mkdir(run, 0o700)
    pam_dir = os.path.join(tmp, "pam")
    os.mkdir(pam_dir)
    shutil.copy(os.path.join(SOURCE, "daemon", "wayray.pam"), os.path.join(pam_dir, "wayray"))
    base = 33000 + (os.getpid() % 100) * 20
    cfg = os.path.join(tmp, "seat.conf")
    with open(cfg, "w") as f:
        f.write("[daemon]\nlisten-address=127.0.0.1\nport=%d\n"
                "token-store=%s/tokens\nruntime-directory=%s/seat\ncontrol-socket=%s/ctl\n"
                "pam-service=wayray\npam-directory=%s\n"
                "[session]\ndesktop=kiosk\ncommand=foot --override=cursor.blink=no bash --norc --noprofile\n"
                "keymap-layout=us\nallow-root=true\nsound=false\n"
                % (base, tmp, tmp, run, pam_dir))
    pcscd = wrpcsc.Pcscd(tmp, base + 10)
    env = pcscd.env(dict(os.environ, XDG_RUNTIME_DIR=run, XDG_CONFIG_HOME=os.path.join(tmp, "config"),
                         WAYRAY_PIPELINES_PATH=os.path.join(SOURCE, "pipelines")))
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("DISPLAY", None)
    ctl = lambda *a: subprocess.run([WAYRAYCTL, "--config", cfg] + list(a), env=env,  # noqa: E731
                                    capture_output=True, text=True, timeout=30)
    daemon = None
    terminals = []
    started = time.monotonic()
    try:
        if not check("pcscd starts with two virtual readers", pcscd.ready(), open(pcscd.log).read()[-800:]):
            return 1

        # --- enrolment ----------------------------------------------------
        r = ctl("card-read")
        check("card-read with no card in the reader says so", r.returncode == 1 and
              "there is no card in 'WayRay test reader 00 00'" in r.stderr, r.stdout + r.stderr)
        pcscd.insert(0, CARD_A)
        # pcscd looks at a vpcd reader about every 0.4 s.
        wait_for(lambda: ctl("card-read").returncode == 0, 5)
        r = ctl("card-read")
        check("card-read prints the card's ID: its ICCID (EF.ICCID)", r.stdout.strip() == "iccid:" + CARD_A,
              r.stdout + r.stderr)
        r = ctl("card-add", "desk-a", "--user", ME)
        check("card-add registers the card in the reader",
              r.returncode == 0 and "registered card iccid:%s as 'desk-a'" % CARD_A in r.stdout, r.stdout + r.stderr)
        store = open(os.path.join(tmp, "tokens")).read() if os.path.exists(os.path.join(tmp, "tokens")) else ""
        check("the store keeps a salted verifier of the card, not its ID",
              re.search(r"^desk-a %s scram-sha256:\S+ card$" % re.escape(ME), store, re.M) is not None
              and CARD_A not in store, store)
        r = ctl("card-add", "desk-a2", "--user", ME)
        check("the same card cannot be registered twice",
              r.returncode == 1 and "already registered as 'desk-a'" in r.stderr, r.stdout + r.stderr)
        r = ctl("card-add", "desk-x", "--user", ME, "--id", "iccid:12")
        check("a malformed --id is refused", r.returncode == 2 and "is not a card ID" in r.stderr, r.stderr)
        r = ctl("card-read", "--reader", "No such reader")
        check("a reader that is not there is named", r.returncode == 1 and
              "there is no reader named 'No such reader'" in r.stderr, r.stderr)
        pcscd.remove(0)

        daemon_log = os.path.join(tmp, "wayrayd.log")
        daemon = subprocess.Popen([WAYRAYD, "--config", cfg], env=env, stdout=open(daemon_log, "w"),
                                  stderr=subprocess.STDOUT)
        log = lambda: open(daemon_log, errors="replace").read()  # noqa: E731
        if not check("wayrayd starts", wait_for(lambda: "ready on port" in log(), 20), log()[-1000:]):
            return 1

        # --- terminal 1: insert, type, remove -------------------------------
        t1 = Terminal(env, base, wrpcsc.READERS[0], "800x600", "terminal-1")
        terminals.append(t1)
        check("with no card the terminal asks for one", t1.expect(r"^state insert-card$", 20) is not None,
              "\n".join(t1.lines))
        check("and shows no session", t1.picture_gone(tmp), "\n".join(t1.lines))
        pcscd.insert(0, CARD_A)
        m = t1.expect(r"^card inserted (\S+) \(WayRay test reader 00 00\)", 20)
        check("inserting the card is seen, with its ID", m is not None and m.group(1) == "iccid:" + CARD_A,
              "\n".join(t1.lines) + "\n(pcscd %s the card in the reader)"
              % ("has" if pcscd.seated(0, 1) else "does not have"))
        check("the card logs in: a new session, attached, first frame",
              t1.expect(r"^state attached .* new=1 size=800x600", 30) is not None and
              t1.expect(r"^first-frame", 20) is not None, "\n".join(t1.lines) + log()[-800:])
        check("foot runs in the card's session", wait_for(lambda: len(parse_listing(ctl("list").stdout)) == 1, 20))
        rows = parse_listing(ctl("list").stdout)
        check("wayrayctl lists the session under the card's name",
              len(rows) == 1 and rows[0].get("token") == "desk-a" and rows[0].get("state") == "attached", str(rows))
        # Half a command line: the rest is typed at the other terminal.
        marker = os.path.join(tmp, "hot-desk.txt")
        t1.send("wait-idle 1500")
        t1.expect(r"^idle$", 20)
        t1.send("type echo hot-")
        t1.send("wait-idle 600")
        t1.expect(r"^idle$", 20)

        pcscd.remove(0)
        check("taking the card out, the terminal asks for a card again",
              t1.expect(r"^state insert-card$", 10) is not None, "\n".join(t1.lines))
        m = t1.expect(r"^card removed \(WayRay test reader 00 00\) picture gone ([0-9.]+)", 5)
        check("and says the card went", m is not None, "\n".join(t1.lines))
        check("and the session's picture is gone from it", t1.picture_gone(tmp), "\n".join(t1.lines))
        check("the server detaches the session and keeps it",
              wait_for(lambda: [r.get("state") for r in parse_listing(ctl("list").stdout)] == ["detached"], 10),
              ctl("list").stdout)

        # --- terminal 2: the same card brings the session there -------------
        t2 = Terminal(env, base, wrpcsc.READERS[1], "1024x768", "terminal-2")
        terminals.append(t2)
        t2.expect(r"^state insert-card$", 20)
        pcscd.insert(1, CARD_A)
        check("the same card at another terminal brings the session there (not a new one)",
              t2.expect(r"^state attached .* new=0 size=1024x768", 30) is not None and
              t2.expect(r"^first-frame", 20) is not None, "\n".join(t2.lines))
        rows = parse_listing(ctl("list").stdout)
        check("resized to that terminal's screen", len(rows) == 1 and rows[0].get("size") == "1024x768", str(rows))
        t2.send("wait-idle 600")
        t2.expect(r"^idle$", 20)
        t2.send("type desk > %s\\n" % marker)
        check("what was typed at the first terminal is still there: the command line finishes at the second",
              wait_for(lambda: os.path.exists(marker) and open(marker).read().strip() == "hot-desk", 15),
              open(marker).read() if os.path.exists(marker) else "no file")
        check("terminal 1 stayed waiting for a card", "state attached" not in "\n".join(t1.lines[-5:]),
              "\n".join(t1.lines[-5:]))
        t1.quit()               # its reader is the next tests' 
        pcscd.remove(1)
        t2.expect(r"^state insert-card$", 10)

        # --- a card that is not registered ----------------------------------
        before = log().count("card not registered")
        pcscd.insert(1, CARD_B)
        check("an unregistered card is refused with the reason, on the screen",
              t2.expect(r"^refused: card not registered$", 20) is not None and
              t2.expect(r"^state card-held$", 5) is not None, "\n".join(t2.lines))
        check("and in the daemon's log", wait_for(lambda: log().count("card not registered") > before, 5),
              log()[-600:])
        check("it starts no session", len(parse_listing(ctl("list").stdout)) == 1)
        pcscd.remove(1)
        check("taking it out asks for a card again", t2.expect(r"^state insert-card$", 10) is not None,
              "\n".join(t2.lines))

        # --- a card with no ID ------------------------------------------------
        pcscd.insert(1)
        m = t2.expect(r"^card unreadable \(WayRay test reader 00 01\): (.*)$", 20)
        check("a card with no serial is refused with the reason",
              m is not None and "this card has no ID WayRay can read" in m.group(1), "\n".join(t2.lines))
        pcscd.remove(1)
        t2.expect(r"^state insert-card$", 10)

        # --- cards with a key: PIV through OpenSC's PKCS#11 module -------------
        keys = {name: wrpcsc.piv_key(tmp, name) for name in ("k1", "k2", "k3")}
        keys["k4"] = wrpcsc.piv_key(tmp, "k4", "rsa")
        pcscd.insert(1, piv=keys["k1"], key_slot="9a", pin="123456")
        m = t2.expect(r"^card key ([0-9a-f]{32}) \(.*\) PIN$", 30)
        check("a PIV card's key is found through PKCS#11, and it wants its PIN", m is not None and
              t2.expect(r"^state pin-wanted$", 5) is not None, "\n".join(t2.lines[-6:]))
        r = ctl("card-read", "--reader", wrpcsc.READERS[1])
        check("card-read names the card's key", r.returncode == 0 and m is not None and
              r.stdout.strip() == "key %s (Certificate for PIV Authentication, ECDSA, PIN)" % m.group(1),
              r.stdout + r.stderr)
        r = ctl("card-add", "key-1", "--user", ME, "--key", "--reader", wrpcsc.READERS[1])
        check("card-add --key registers the card's public key", r.returncode == 0 and m is not None and
              "registered the card key %s" % m.group(1) in r.stdout, r.stdout + r.stderr)
        store = open(os.path.join(tmp, "tokens")).read()
        check("the store keeps the public key", re.search(r"^key-1 %s pubkey:[0-9a-f]{32}:[0-9a-f]+ card$"
                                                          % re.escape(ME), store, re.M) is not None, store)
        t2.send("pin 000000")
        check("a wrong PIN is told, and the PIN asked again",
              t2.expect(r"^pin wrong$", 20) is not None and t2.expect(r"^state pin-wanted$", 5) is not None,
              "\n".join(t2.lines[-6:]))
        check("nothing logged in meanwhile", len(parse_listing(ctl("list").stdout)) == 1)
        t2.send("pin 123456")
        check("the right PIN: the card signs the login, a new session for its account",
              t2.expect(r"^pin accepted$", 20) is not None and
              t2.expect(r"^state attached .* new=1 size=1024x768", 30) is not None and
              t2.expect(r"^first-frame", 20) is not None, "\n".join(t2.lines[-8:]) + log()[-600:])
        rows = {r.get("token"): r for r in parse_listing(ctl("list").stdout)}
        check("listed under the card's name, as its user",
              rows.get("key-1", {}).get("user") == ME and rows.get("key-1", {}).get("state") == "attached", str(rows))
        pcscd.remove(1)
        t2.expect(r"^state insert-card$", 10)
        check("taking the key card out detaches its session",
              wait_for(lambda: {r.get("token"): r.get("state") for r in parse_listing(ctl("list").stdout)}
                       .get("key-1") == "detached", 10), ctl("list").stdout)

        r = ctl("card-add", "key-2", "--user", ME, "--public-key", keys["k2"][1])
        check("card-add --public-key registers a card from its certificate file", r.returncode == 0, r.stderr)
        pcscd.insert(1, piv=keys["k2"], key_slot="9e")
        check("a key that signs without a PIN (PIV card authentication, 9E) logs in at once",
              t2.expect(r"^card key [0-9a-f]{32} \(.*\)$", 30) is not None and
              t2.expect(r"^state attached .* new=1", 30) is not None and t2.expect(r"^first-frame", 20) is not None,
              "\n".join(t2.lines[-8:]) + log()[-600:])
        pcscd.remove(1)
        t2.expect(r"^state insert-card$", 10)

        before = log().count("card not registered")
        pcscd.insert(1, piv=keys["k3"], key_slot="9e")
        check("a card with a key nobody registered is refused: card not registered",
              t2.expect(r"^refused: card not registered$", 30) is not None and
              log().count("card not registered") > before, "\n".join(t2.lines[-6:]))
        pcscd.remove(1)
        t2.expect(r"^state insert-card$", 10)

        # An RSA 2048 key: OpenSC pads, the card computes raw RSA, GnuTLS
        # checks an RSA PKCS#1 v1.5 SHA-256 signature.
        pcscd.insert(1, piv=keys["k4"], key_slot="9e")
        m = t2.expect(r"^card key ([0-9a-f]{32}) \(.*\)$", 30)
        r = ctl("card-read", "--reader", wrpcsc.READERS[1])
        check("an RSA key on a card is found and named", m is not None and r.returncode == 0 and
              r.stdout.strip() == "key %s (Certificate for Card Authentication, RSA, no PIN)" % m.group(1),
              "\n".join(t2.lines[-4:]) + r.stdout + r.stderr)
        check("an unregistered RSA key is refused", t2.expect(r"^refused: card not registered$", 30) is not None,
              "\n".join(t2.lines[-4:]))
        r = ctl("card-add", "key-4", "--user", ME, "--key", "--reader", wrpcsc.READERS[1])
        check("card-add --key registers it", r.returncode == 0, r.stdout + r.stderr)
        pcscd.remove(1)
        t2.expect(r"^state insert-card$", 10)
        pcscd.insert(1, piv=keys["k4"], key_slot="9e")
        check("the RSA card signs its login: a new session, first frame",
              t2.expect(r"^state attached .* new=1", 30) is not None and t2.expect(r"^first-frame", 20) is not None,
              "\n".join(t2.lines[-8:]) + log()[-600:])
        rows = {r.get("token"): r for r in parse_listing(ctl("list").stdout)}
        check("listed under the RSA card's name", rows.get("key-4", {}).get("state") == "attached", str(rows))
        pcscd.remove(1)
        t2.expect(r"^state insert-card$", 10)
        t2.quit()

        # --- the window client asks for the PIN in its window -----------------
        window_pin(env, base, pcscd, keys["k1"], tmp, terminals)

        # --- a fake front door learns nothing it can use ---------------------
        # The card's ID is a password: the hello names its id only, and a
        # man in the middle relaying the whole login cannot complete it.
        fp = ctl("fingerprint").stdout.strip()
        relay = subprocess.Popen([os.path.join(BUILD, "tests", "client", "wr-door-relay"), str(base + 5), str(base), fp],
                                 env=dict(env, XDG_CONFIG_HOME=os.path.join(tmp, "relay")), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
        time.sleep(1.5)
        def relayed_login(name, **card):
            """A terminal behind the relay puts a card in: (its refusal line,
            what the relay passed on)."""
            victim = Terminal(dict(env, XDG_CONFIG_HOME=os.path.join(tmp, name)), base + 5, wrpcsc.READERS[0],
                              "800x600", name)
            terminals.append(victim)
            victim.expect(r"^state insert-card$", 20)
            pcscd.insert(0, **card)
            said = victim.expect(r"^refused", 30)
            passed = drain(relay.stdout)
            victim.quit()
            pcscd.remove(0)
            return said, passed, victim

        before = log().count("the token's proof does not verify")
        said, relayed, victim = relayed_login("victim", iccid=CARD_A)
        check("a man in the middle relaying a card's login cannot complete it",
              "to-server proof" in relayed and said is not None and "proof does not verify" in said.string
              and log().count("the token's proof does not verify") > before,
              "relay: %s\nclient: %s" % (relayed[-300:], "\n".join(victim.lines[-4:])))
        before = log().count("the card's signature does not verify")
        said, relayed, victim = relayed_login("victim-key", piv=keys["k2"], key_slot="9e")
        check("nor a card's signed login: the signature covers the client's own connection",
              said is not None and "the card's signature does not verify" in said.string and
              log().count("the card's signature does not verify") > before, "\n".join(victim.lines[-4:]))
        relay.kill()
        relay.communicate()
        pcscd.insert(0, CARD_A)
        check("the session stays detached, untouched",
              {r.get("token"): r.get("state") for r in parse_listing(ctl("list").stdout)}.get("desk-a") == "detached",
              ctl("list").stdout)
        # A fake front door (a QUIC server with a certificate of its own)
        # collects the card's hello: the id of the card's secret, not the
        # card's ICCID.
        captured = os.path.join(tmp, "captured-hello.bin")
        fake = subprocess.Popen(["gst-launch-1.0", "-q", "quicsink", "mode=server", "host=127.0.0.1",
                                 "port=%d" % (base + 6), "quicsrc", "mode=server", "host=127.0.0.1",
                                 "port=%d" % (base + 6), "unadmitted-streams=hello", "name=s", "s.hello", "!",
                                 "filesink", "location=" + captured, "sync=false", "buffer-mode=unbuffered"],
                                env=e2e.gst_launch_env(dict(env, XDG_CONFIG_HOME=os.path.join(tmp, "fake-door"))),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        victim = Terminal(dict(env, XDG_CONFIG_HOME=os.path.join(tmp, "victim2")), base + 6, wrpcsc.READERS[0],
                          "800x600", "victim2")
        terminals.append(victim)
        got = wait_for(lambda: os.path.exists(captured) and b"hello" in open(captured, "rb").read(), 20)
        victim.quit()
        fake.kill()
        fake.wait()
        hello = open(captured, "rb").read() if got else b""
        secret_id = hashlib.sha256(("wayray-token-id:wayray-card:iccid:" + CARD_A).encode()).hexdigest()[:32]
        check("a fake front door collects a hello that names the card's id, not its ICCID",
              got and CARD_A.encode() not in hello and secret_id.encode() in hello
              and b"credential=(string)card" in hello, repr(hello[:300]))
        pcscd.remove(0)

        # --- removal as the operator sees it ----------------------------------
        r = ctl("card-remove", "desk-a")
        check("card-remove removes the card and ends its session",
              r.returncode == 0 and wait_for(lambda: "desk-a" not in [r.get("token") for r in
                                                                      parse_listing(ctl("list").stdout)], 15),
              r.stdout + r.stderr + ctl("list").stdout)
        return 0
    finally:
        for t in terminals:
            t.quit()
        if daemon:
            # Sessions outlive a daemon that stops: shutdown ends them too.
            ctl("shutdown")
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
            check("no session application is left behind", wait_for(lambda: not processes_of(tmp), 10),
                  str(processes_of(tmp)))
        pcscd.close()
        subprocess.run(["pkill", "-f", "wrcard.py --port %d" % (base + 10)])
        passed = sum(results)
        if os.environ.get("WAYRAY_TEST_KEEP") or passed != len(results):
            print("#      kept %s for inspection" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        print("#      took %d s" % (time.monotonic() - started))
        print("%d passed, %d failed" % (passed, len(results) - passed))


if __name__ == "__main__":
    main()
    sys.exit(0 if results and all(results) else 1)
