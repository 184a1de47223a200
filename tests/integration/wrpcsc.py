"""A private pcscd with virtual readers, and virtual cards to put in them,
for the smart card test and benchmark.

pcscd 1.9 always listens on /run/pcscd/pcscd.comm: it runs here in a mount
namespace of its own where that directory is the test's, and clients find
it through PCSCLITE_CSOCK_NAME (which libpcsclite reads). Its readers are
vsmartcard's vpcd: "WayRay test reader 00 00" takes cards on PORT, "... 00 01"
on PORT+1 (vpcd listens there; tests/smartcard/wrcard.py connects as the
card)."""
import ctypes
import os
import signal
import subprocess
import time

SOURCE = os.environ.get("WAYRAY_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
CARD = os.path.join(SOURCE, "tests", "smartcard", "wrcard.py")
VPCD = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
READERS = ("WayRay test reader 00 00", "WayRay test reader 00 01")


def missing():
    """What this machine lacks to run a pcscd with virtual cards, or ""."""
    for path, package in (("/usr/sbin/pcscd", "pcscd"), (VPCD, "vsmartcard-vpcd"),
                          ("/usr/lib/python3/site-packages/virtualsmartcard", "python3-virtualsmartcard")):
        if not os.path.exists(path):
            return "%s is missing (install %s: ./dev deps)" % (path, package)
    return ""


def piv_key(directory, name, kind="ec"):
    """A key and its self-signed certificate for an emulated PIV card:
    (key PEM, certificate DER) in @directory; @kind "ec" (P-256) or "rsa"
    (2048 bits)."""
    pem, der = os.path.join(directory, name + ".pem"), os.path.join(directory, name + ".der")
    newkey = ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec" else ["rsa:2048"]
    subprocess.run(["openssl", "req", "-x509", "-newkey"] + newkey + ["-nodes", "-keyout", pem,
                    "-subj", "/CN=wayray test " + name, "-days", "30", "-outform", "DER", "-out", der],
                   check=True, capture_output=True)
    return pem, der


class _ReaderState(ctypes.Structure):
    _fields_ = [("reader", ctypes.c_char_p), ("user", ctypes.c_void_p), ("current", ctypes.c_ulong),
                ("event", ctypes.c_ulong), ("atr_len", ctypes.c_ulong), ("atr", ctypes.c_ubyte * 33)]


def reader_state(socket, reader):
    """What the pcscd at @socket says of @reader: (card present, its count
    of insertions and removals), or None (libpcsclite, SCardGetStatusChange
    with no wait)."""
    os.environ["PCSCLITE_CSOCK_NAME"] = socket
    lib = ctypes.CDLL("libpcsclite.so.1")
    ctx = ctypes.c_long(0)
    if lib.SCardEstablishContext(2, None, None, ctypes.byref(ctx)) != 0:
        return None
    st = _ReaderState(reader.encode(), None, 0, 0, 0)
    rc = lib.SCardGetStatusChange(ctx, ctypes.c_ulong(0), ctypes.byref(st), ctypes.c_ulong(1))
    lib.SCardReleaseContext(ctx)
    if rc != 0:
        return None
    return bool(st.event & 0x20), st.event >> 16       # SCARD_STATE_PRESENT


class Pcscd:
    def __init__(self, tmp, port):
        self.dir = os.path.join(tmp, "pcscd")
        self.port = port
        run = os.path.join(self.dir, "run")
        conf = os.path.join(self.dir, "reader.conf.d")
        os.makedirs(run)
        os.makedirs(conf)
        with open(os.path.join(conf, "vpcd"), "w") as f:
            f.write('FRIENDLYNAME "WayRay test reader"\nDEVICENAME /dev/null:0x%X\nLIBPATH %s\nCHANNELID 0x%X\n'
                    % (port, VPCD, port))
        os.makedirs("/run/pcscd", exist_ok=True)
        self.socket = os.path.join(run, "pcscd.comm")
        self.log = os.path.join(self.dir, "pcscd.log")
        self.p = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount --bind "$0" /run/pcscd && exec pcscd --foreground --debug --config "$1"', run, conf],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        self.cards = {}
        self.gone = {}        # reader -> pcscd's event count before its card left

    def env(self, base):
        return dict(base, PCSCLITE_CSOCK_NAME=self.socket)

    def ready(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.socket) and self.p.poll() is None:
                return True
            time.sleep(0.05)
        return False

    def insert(self, slot, iccid=None, piv=None, key_slot="9a", pin="123456"):
        """Puts a card into reader @slot (0 or 1); with @iccid it has that
        serial, else none; with @piv, (key PEM, certificate DER), it is a
        PIV card with that key in @key_slot. Returns when vpcd has it (the
        card's process is connected); pcscd notices on its next look at the
        reader."""
        self.remove(slot)
        if slot in self.gone:
            self.settled(slot)
        args = ["/usr/bin/python3", CARD, "--port", str(self.port + slot), "--verbose"]
        if iccid:
            args += ["--iccid", iccid]
        if piv:
            args += ["--piv-key", piv[0], "--piv-cert", piv[1], "--slot", key_slot, "--pin", pin]
        for _ in range(50):
            p = subprocess.Popen(args, stdout=subprocess.PIPE,
                                 stderr=open(os.path.join(self.dir, "card-%d.log" % slot), "a"))
            line = p.stdout.readline()
            if b"card inserted" in line:
                self.cards[slot] = p
                return time.monotonic()
            p.wait()
            time.sleep(0.1)           # vpcd not listening yet
        raise RuntimeError("no card could be put in reader %d" % slot)

    def seated(self, slot, timeout=3):
        """Whether pcscd has seen the card in reader @slot (it polls a vpcd
        reader about every 0.4 s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = reader_state(self.socket, READERS[slot])
            if state and state[0]:
                return True
            time.sleep(0.05)
        return False

    def remove(self, slot, settle=True):
        """Takes the card out of reader @slot; the time it left. With
        @settle, returns once pcscd has seen it go (settled())."""
        p = self.cards.pop(slot, None)
        if not p:
            return None
        before = reader_state(self.socket, READERS[slot])
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)
        left = time.monotonic()
        # pcscd had not seen this card yet: nothing to count, one look to wait.
        self.gone[slot] = before[1] if before and before[0] else None
        if settle:
            self.settled(slot)
        return left

    def settled(self, slot, timeout=5):
        """Waits until pcscd has seen the last card taken out of reader
        @slot go: its reader empty, and one more removal counted.

        A real reader tells of a removal at once. vpcd learns of it only
        when pcscd next looks (about every 0.4 s), and a card put in before
        that look takes the old one's place unseen: pcscd counts no removal
        and no insertion, and a client that touched the old card in that
        gap is left with a reader pcscd calls empty while the new card sits
        in it. A person cannot swap cards that fast; the tests do not either."""
        before = self.gone.pop(slot, None)
        if before is None:
            time.sleep(0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = reader_state(self.socket, READERS[slot])
            if state and not state[0] and (before is None or state[1] != before):
                return
            time.sleep(0.05)
        raise RuntimeError("pcscd did not see the card leave reader %d" % slot)

    def close(self):
        for slot in list(self.cards):
            self.remove(slot, settle=self.p.poll() is None)
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
