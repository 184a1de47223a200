#!/usr/bin/python3
"""A virtual smart card for the tests: put into the virtual reader (vpcd)
of a pcscd while this program runs, taken out when it ends.

    wrcard.py --port PORT [--iccid DIGITS]

--iccid gives the card an EF.ICCID (file 2FE2 under the MF, ISO 7816-4's
card serial, BCD as on real cards): its identity for WayRay's registered
cards. Without it the card has an empty MF and no serial. The card is
python3-virtualsmartcard's ISO 7816 card; only its file system is ours.

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

from virtualsmartcard.VirtualSmartcard import VirtualICC, Iso7816OS  # noqa: E402
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True, help="the vpcd reader's port")
    ap.add_argument("--iccid", default="", help="the card's serial (digits)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.iccid and not all(ch.isdigit() for ch in args.iccid):
        ap.error("--iccid takes digits")
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
