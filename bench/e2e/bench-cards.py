#!/usr/bin/env python3
"""bench-cards: hot-desking with a smart card, timed.

A real pcscd with vsmartcard's virtual reader (vpcd), a virtual ISO 7816
card (tests/smartcard/wrcard.py) registered with `wayrayctl card-add`,
wayrayd with a foot session, one headless `wayray-client --smartcard` at
1280x720. Each cycle puts the card in, waits for the session's first frame,
then takes the card out and waits until the client has dropped the
picture.

* Card in -> first frame: from the card's connecting to the reader to the
  client reading its first frame line. The parts: pcscd seeing the card
  (vpcd is polled; a USB CCID reader interrupts), the client reading the
  card's ID, the login and the first frame.
* Card out -> picture gone: from the card leaving the reader to the
  client's "card removed ... picture gone" line; the client's own part
  (pcscd's event to the picture dropped) is in that line.

The first cycle makes the session; the others reattach it. The same
again with PIV cards whose key signs without a PIN (slot 9E), through
OpenSC's PKCS#11 module: the client finds the key, the card signs the
login; one card with an ECDSA P-256 key, one with an RSA 2048 key.

Usage: bench-cards [CYCLES] (default 20). Runs as root (pcscd runs in a
mount namespace of its own).
"""
import os
import pwd
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = os.path.realpath(os.environ.get("WAYRAY_BUILD_ROOT",
                                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")))
SOURCE = os.path.realpath(os.environ.get("WAYRAY_SOURCE_ROOT", os.path.join(BUILD, "..")))
WAYRAYD = os.path.join(BUILD, "daemon", "wayrayd")
WAYRAYCTL = os.path.join(BUILD, "daemon", "wayrayctl")
CLIENT = os.path.join(BUILD, "client", "wayray-client")
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
os.environ.setdefault("WAYRAY_SOURCE_ROOT", SOURCE)
import wrclient  # noqa: E402
import wrpcsc  # noqa: E402

ME = pwd.getpwuid(os.getuid()).pw_name
ICCID = "8949012345678901234"


def med(xs):
    return "%.1f ms" % statistics.median(xs) if xs else "n/a"


def main():
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    why = wrpcsc.missing()
    if why:
        sys.exit("bench-cards: " + why)
    tmp = tempfile.mkdtemp(prefix="wayray-bench-cards-")
    run = os.path.join(tmp, "run")
    os.mkdir(run, 0o700)
    port = 37000 + os.getpid() % 500 * 4
    cfg = os.path.join(tmp, "seat.conf")
    with open(cfg, "w") as f:
        f.write("[daemon]\nlisten-address=127.0.0.1\nport=%d\ntoken-store=%s/tokens\nruntime-directory=%s/seat\n"
                "control-socket=%s/ctl\n[session]\ndesktop=kiosk\n"
                "command=foot --override=cursor.blink=no bash --norc --noprofile\nkeymap-layout=us\n"
                "allow-root=true\nsound=false\n" % (port, tmp, tmp, run))
    pcscd = wrpcsc.Pcscd(tmp, port + 2)
    env = pcscd.env(dict(os.environ, XDG_RUNTIME_DIR=run, XDG_CONFIG_HOME=os.path.join(tmp, "config"),
                         WAYRAY_PIPELINES_PATH=os.path.join(SOURCE, "pipelines")))
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("DISPLAY", None)
    daemon = client = None
    try:
        if not pcscd.ready():
            sys.exit("pcscd did not start:\n" + open(pcscd.log).read())
        keys = {kind: wrpcsc.piv_key(tmp, kind, kind) for kind in ("ec", "rsa")}
        for args in (("card-add", "bench", "--user", ME, "--id", "iccid:" + ICCID),
                     ("card-add", "bench-ec", "--user", ME, "--public-key", keys["ec"][1]),
                     ("card-add", "bench-rsa", "--user", ME, "--public-key", keys["rsa"][1])):
            subprocess.run([WAYRAYCTL, "--config", cfg] + list(args), env=env, check=True, capture_output=True)
        log = os.path.join(tmp, "wayrayd.log")
        daemon = subprocess.Popen([WAYRAYD, "--config", cfg], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        if not wrclient.wait_for(lambda: "ready on port" in open(log).read(), 20):
            sys.exit("wayrayd did not start:\n" + open(log).read()[-2000:])
        client = wrclient.Client(CLIENT, env, port, None, "1280x720",
                                 ["--headless", "--name", "bench", "--smartcard=" + wrpcsc.READERS[0]])
        if not client.expect(r"^state insert-card$", 20):
            sys.exit("the client did not come up:\n" + "\n".join(client.lines))
        print("bench-cards: %d cycles per card, a vpcd reader, a foot session at 1280x720" % cycles)
        for kind, card in (("registered card (EF.ICCID)", dict(iccid=ICCID)),
                           ("PIV card, ECDSA P-256 key without PIN (9E), OpenSC", dict(piv=keys["ec"], key_slot="9e")),
                           ("PIV card, RSA 2048 key without PIN (9E), OpenSC", dict(piv=keys["rsa"], key_slot="9e"))):
            ins, ins_pcscd, outs, outs_client = [], [], [], []
            phases = random.Random(20)
            for i in range(cycles):
                t0 = pcscd.insert(0, **card)
                m = client.expect(r"^card inserted \S+ \(.*\)( [0-9.]+)?$", 20)
                seen = time.monotonic()
                if not m or not client.expect(r"^first-frame", 30):
                    sys.exit("cycle %d: no first frame:\n%s\n%s" % (i, "\n".join(client.lines[-10:]),
                                                                      open(log).read()[-1500:]))
                ins.append((time.monotonic() - t0) * 1000)
                ins_pcscd.append((seen - t0) * 1000)
                # The session shows a while: 1 s and a part of vpcd's 0.4 s
                # polling period, so that removals fall at every point of
                # it and not always at the same one.
                time.sleep(1.0 + phases.uniform(0, 0.4))
                t0 = time.monotonic()
                pcscd.remove(0, settle=False)     # the next insert() waits for pcscd
                m = client.expect(r"^card removed \(.*\) picture gone ([0-9.]+)$", 10)
                if not m:
                    sys.exit("cycle %d: the removal was not seen:\n%s" % (i, "\n".join(client.lines[-10:])))
                outs.append((time.monotonic() - t0) * 1000)
                outs_client.append(float(m.group(1)))
                time.sleep(0.3)
            print("%s:" % kind)
            print("  card in  -> first frame   median %s (min %.1f, max %.1f; the first, a new session: %.1f ms)"
                  % (med(ins[1:]), min(ins[1:] or ins), max(ins[1:] or ins), ins[0]))
            print("     of it: the client told of the card (pcscd's look, its ID read)  median %s" % med(ins_pcscd))
            print("  card out -> picture gone  median %s (min %.1f, max %.1f)" % (med(outs), min(outs), max(outs)))
            print("     of it: the client (pcscd's event to the picture dropped)  median %s" % med(outs_client))
        return 0
    finally:
        if client:
            client.quit()
        if daemon:
            subprocess.run([WAYRAYCTL, "--config", cfg, "shutdown"], env=env, capture_output=True)
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
        pcscd.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
