#!/usr/bin/python3
"""A virtual smart card for the tests: put into the virtual reader (vpcd)
of a pcscd while this program runs, taken out when it ends.

    wrcard.py --port PORT [--iccid DIGITS]
    wrcard.py --port PORT --piv-key KEY.pem --piv-cert CERT.der [--slot 9a|9e] [--pin PIN]

--iccid gives the card an EF.ICCID (file 2FE2 under the MF, ISO 7816-4's
card serial, BCD as on real cards): its identity for WayRay's registered
cards. Without it the card has an empty MF and no serial. The card is
python3-virtualsmartcard's ISO 7816 card; only its file system is ours.

With --piv-key the card is a PIV card instead (NIST SP 800-73-4, the
parts OpenSC's PIV driver uses): an application with one key, ECDSA
P-256 or RSA 2048, and its certificate, in slot 9A (PIV authentication:
signing needs the PIN, --pin, default 123456) or 9E (card authentication:
no PIN). The card answers SELECT, GET DATA, VERIFY, GENERAL AUTHENTICATE
(computed here: ECDSA over the hash it is given, or raw RSA on the block
the host padded) and GET RESPONSE, in short or extended APDUs, with
command chaining.

SIGTERM or SIGINT take the card out (the reader sees it gone at once).
"""
import argparse
import logging
import os
import signal
import sys

VSC = "/usr/lib/python3/site-packages/virtualsmartcard"
if VSC not in sys.path:
    sys.path.append(VSC)
# virtualsmartcard imports Crypto; Debian's pycryptodome is Cryptodome.
try:
    import Crypto  # noqa: F401
except ImportError:
    import Cryptodome
    sys.modules["Crypto"] = Cryptodome
    for sub in ("Cipher", "Hash", "PublicKey", "Random", "Util", "Protocol", "Signature"):
        try:
            sys.modules["Crypto." + sub] = __import__("Cryptodome." + sub, fromlist=["_"])
        except ImportError:
            pass

from virtualsmartcard.VirtualSmartcard import VirtualICC, Iso7816OS, SmartcardOS  # noqa: E402
from virtualsmartcard.SmartcardFilesystem import MF, TransparentStructureEF  # noqa: E402
from virtualsmartcard.SmartcardSAM import SAM  # noqa: E402
from virtualsmartcard.ConstantDefinitions import FDB  # noqa: E402


def bcd(digits):
    """ICCID digits packed two to a byte, low nibble first (ITU-T E.118)."""
    if len(digits) % 2:
        digits += "F"
    out = bytearray()
    for i in range(0, len(digits), 2):
        out.append(int(digits[i + 1], 16) << 4 | int(digits[i], 16))
    return bytes(out)


class CardOS(Iso7816OS):
    """virtualsmartcard's ISO 7816 card, answering the reader-class (CLA
    FF) commands a reader does not take for itself as a real card does:
    6E00, class not supported (the library would try secure messaging)."""

    def execute(self, msg):
        if msg[:1] == b"\xff":
            return b"\x6e\x00"
        return Iso7816OS.execute(self, msg)


def iso_card(iccid):
    mf = MF(filedescriptor=FDB["DF"])
    if iccid:
        mf.append(TransparentStructureEF(parent=mf, fid=0x2FE2, filedescriptor=0x01, data=bcd(iccid)))
    sam = SAM(b"1234", b"1234567890")
    sam.set_MF(mf)
    return CardOS(mf, sam)


PIV_AID = bytes.fromhex("A000000308000010000100")
# Algorithm references (SP 800-78-4 table 6-2).
ALG_RSA_2048, ALG_ECC_P256 = 0x07, 0x11
# Certificate objects by key reference (SP 800-73-4 table 3).
PIV_CERT_OBJECT = {0x9A: bytes.fromhex("5FC105"), 0x9E: bytes.fromhex("5FC101")}


def tlv(tag, value):
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n < 0x100:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82, n >> 8, n & 0xFF])
    return bytes([tag]) + length + value


def untlv(data):
    """{tag: value} of a flat BER-TLV string (one-byte tags)."""
    out, i = {}, 0
    while i + 2 <= len(data):
        tag, n = data[i], data[i + 1]
        i += 2
        if n == 0x81:
            n, i = data[i], i + 1
        elif n == 0x82:
            n, i = data[i] << 8 | data[i + 1], i + 2
        out[tag] = data[i:i + n]
        i += n
    return out


class PivOS(SmartcardOS):
    def __init__(self, key, cert, slot, pin):
        from Cryptodome.PublicKey import ECC, RSA
        text = open(key).read()
        try:
            self.key, self.alg = ECC.import_key(text), ALG_ECC_P256
        except ValueError:
            self.key, self.alg = RSA.import_key(text), ALG_RSA_2048
            if self.key.size_in_bits() != 2048:
                raise SystemExit("a PIV RSA key is 2048 bits")
        self.cert = open(cert, "rb").read()
        self.slot = slot
        self.pin = pin.encode()
        self.tries = 3
        self.verified = False
        self.selected = False
        self.pending = b""
        self.chain = b""                          # command chaining (CLA 10)
        self.atr = bytes.fromhex("3B8880010000000000718100")  # no ATR OpenSC knows: found by its AID

    def getATR(self):
        return self.atr

    def powerUp(self):
        self.reset()

    def reset(self):
        self.verified = self.selected = False
        self.pending = self.chain = b""

    def powerDown(self):
        self.reset()

    def answer(self, data, sw=0x9000):
        """Up to 256 bytes now, the rest by GET RESPONSE (61xx)."""
        if len(data) > 256:
            self.pending = data[256:]
            rest = len(self.pending)
            return data[:256] + bytes([0x61, 0 if rest >= 256 else rest])
        self.pending = b""
        return data + bytes([sw >> 8, sw & 0xFF])

    def sign(self, challenge):
        """The card's own arithmetic: raw RSA on a block the host padded, or
        ECDSA over @challenge as the hash."""
        if self.alg == ALG_RSA_2048:
            if len(challenge) != 256:
                return None
            m = int.from_bytes(challenge, "big")
            if m >= self.key.n:
                return None
            return pow(m, self.key.d, self.key.n).to_bytes(256, "big")
        import secrets
        curve_n = int(self.key._curve.order)
        z = int.from_bytes(challenge[:32], "big")
        while True:
            k = secrets.randbelow(curve_n - 1) + 1
            r = int((self.key._curve.G * k).x) % curve_n
            s = pow(k, -1, curve_n) * (z + r * int(self.key.d)) % curve_n
            if r and s:
                break

        def integer(v):
            b = v.to_bytes((v.bit_length() + 8) // 8, "big")
            return tlv(0x02, b)
        return tlv(0x30, integer(r) + integer(s))

    def execute(self, msg):
        if len(msg) < 4:
            return b"\x67\x00"
        cla, ins, p1, p2 = msg[0], msg[1], msg[2], msg[3]
        data = b""
        if len(msg) > 7 and msg[4] == 0:          # extended length
            data = msg[7:7 + (msg[5] << 8 | msg[6])]
        elif len(msg) > 5:
            data = msg[5:5 + msg[4]]
        if cla & 0xEF != 0x00:                    # not 00 or 10: no secure messaging,
            return b"\x6e\x00"                   # no reader-class (FF) commands
        if cla & 0x10:                            # more of the command follows
            self.chain += data
            return b"\x90\x00"
        data, self.chain = self.chain + data, b""
        if ins == 0xC0:                           # GET RESPONSE
            return self.answer(self.pending) if self.pending else b"\x6a\x88"
        if ins == 0xA4 and p1 == 0x04:           # SELECT by AID (a prefix will do)
            if data and PIV_AID.startswith(data):
                self.selected = True
                apt = tlv(0x61, tlv(0x4F, PIV_AID[5:]) + tlv(0x79, tlv(0x4F, PIV_AID[:5])) +
                          tlv(0xAC, tlv(0x80, bytes([self.alg])) + tlv(0x06, b"\x00")))
                return self.answer(apt)
            return b"\x6a\x82"
        if not self.selected:
            return b"\x6d\x00"
        if ins == 0xCB and p1 == 0x3F and p2 == 0xFF:   # GET DATA
            tag = untlv(data).get(0x5C, b"")
            if tag == PIV_CERT_OBJECT.get(self.slot):
                return self.answer(tlv(0x53, tlv(0x70, self.cert) + tlv(0x71, b"\x00") + tlv(0xFE, b"")))
            return b"\x6a\x82"
        if ins == 0x20 and p2 == 0x80:           # VERIFY the PIV application PIN
            if not data:
                return b"\x90\x00" if self.verified else bytes([0x63, 0xC0 | self.tries])
            if self.tries == 0:
                return b"\x69\x83"
            if data.rstrip(b"\xff") == self.pin:
                self.verified, self.tries = True, 3
                return b"\x90\x00"
            self.tries -= 1
            self.verified = False
            return bytes([0x63, 0xC0 | self.tries])
        if ins == 0x87:                          # GENERAL AUTHENTICATE
            if p1 != self.alg or p2 != self.slot:
                return b"\x6a\x86"
            if self.slot == 0x9A and not self.verified:
                return b"\x69\x82"
            inner = untlv(untlv(data).get(0x7C, b""))
            challenge = inner.get(0x81)
            if not challenge:
                return b"\x6a\x80"
            signature = self.sign(challenge)
            if signature is None:
                return b"\x6a\x80"
            return self.answer(tlv(0x7C, tlv(0x82, signature)))
        return b"\x6d\x00"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True, help="the vpcd reader's port")
    ap.add_argument("--iccid", default="", help="the card's serial (digits)")
    ap.add_argument("--piv-key", help="a PIV card with this ECDSA P-256 or RSA 2048 key (PEM)")
    ap.add_argument("--piv-cert", help="... and its certificate (DER)")
    ap.add_argument("--slot", default="9a", choices=["9a", "9e"], help="the key's PIV slot")
    ap.add_argument("--pin", default="123456", help="the PIV application PIN")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.iccid and not all(ch.isdigit() for ch in args.iccid):
        ap.error("--iccid takes digits")
    if args.piv_key:
        os_ = PivOS(args.piv_key, args.piv_cert, int(args.slot, 16), args.pin)
    else:
        os_ = iso_card(args.iccid)
    icc = VirtualICC(None, "iso7816", "127.0.0.1", args.port,
                     logginglevel=logging.INFO if args.verbose else logging.ERROR)
    icc.os = os_

    def out(*_):
        icc.stop()
        os._exit(0)
    signal.signal(signal.SIGTERM, out)
    signal.signal(signal.SIGINT, out)
    print("card inserted", flush=True)
    icc.run()


if __name__ == "__main__":
    main()
