#!/usr/bin/env python3
"""WayRay sound end to end: wayrayd sessions with their own PipeWire
(wireplumber, pipewire-pulse, a session bus), applications playing into it
(pw-play, paplay) and recording from it (pw-record), headless clients that
write what they would play to a WAV file and play a WAV file as their
microphone, over QUIC on loopback and through an impaired link.

Run by meson (`meson test audio`) with the build tree in the environment;
prints one line per check and closes with "N passed, N failed".
"""
import glob
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402
from e2e import check, start_seat, attach_client, shutdown, WAYRAYCTL, WAYRAYD  # noqa: E402
from wrclient import wait_for  # noqa: E402
from wrrelay import Relay  # noqa: E402

RATE = 48000
BLOCK = RATE // 100          # 10 ms


def make_tone(path, freq, seconds, amplitude=0.5):
    """A 16-bit stereo 48 kHz WAV of a sine at @freq."""
    n = int(seconds * RATE)
    ramp = RATE // 100       # 10 ms in and out: no click at either end
    frames = bytearray()
    for i in range(n):
        gain = min(1.0, i / ramp, (n - 1 - i) / ramp)
        v = int(gain * amplitude * 32767 * math.sin(2 * math.pi * freq * i / RATE))
        frames += struct.pack("<hh", v, v)
    with wave.open(path, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))


def read_wav(path):
    """The left channel of a 16-bit WAV as floats; tolerant of a header
    whose sizes were not written yet (data to the end of the file)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return []
    pos, channels, bits = 12, 2, 16
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if cid == b"fmt ":
            channels, bits = struct.unpack("<H", data[pos + 10:pos + 12])[0], \
                struct.unpack("<H", data[pos + 22:pos + 24])[0]
        if cid == b"data":
            body = data[pos + 8:]
            break
        pos += 8 + size + (size & 1)
    else:
        return []
    if bits == 32:
        n = len(body) // 4
        s = struct.unpack("<%df" % n, body[:n * 4])
        return list(s[::channels])
    n = len(body) // 2
    s = struct.unpack("<%dh" % n, body[:n * 2])
    return [v / 32768.0 for v in s[::channels]]


def levels(samples, freq, block=BLOCK):
    """The amplitude of @freq in each block of @block samples (Goertzel)."""
    k = 2 * math.cos(2 * math.pi * freq / RATE)
    out = []
    for b in range(0, len(samples) - block + 1, block):
        s1 = s2 = 0.0
        for v in samples[b:b + block]:
            s1, s2 = v + k * s1 - s2, s1
        out.append(2 * math.sqrt(max(s1 * s1 + s2 * s2 - k * s1 * s2, 0.0)) / block)
    return out


def blocks_with(samples, freq, floor=0.1, block=BLOCK):
    """Blocks (10 ms unless said) with @freq above @floor of full scale."""
    return sum(1 for a in levels(samples, freq, block) if a > floor)


def longest_run(flags):
    best = run = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def silent_gaps(samples, freq, floor=0.1):
    """Blocks without @freq between its first and last block: the longest
    run of them and how many in all."""
    lv = levels(samples, freq)
    on = [i for i, a in enumerate(lv) if a > floor]
    if not on:
        return 0, 0
    inside = [a <= floor for a in lv[on[0]:on[-1] + 1]]
    return longest_run(inside), sum(inside)


def sound_dir(tmp, seat, session):
    found = glob.glob(os.path.join(tmp, seat + "-seat", "**", "wayray-sound-%d" % session), recursive=True)
    return found[0] if found else None


def app_env(env, sdir):
    """What an application of the session has to reach its sound server."""
    return dict(env, PIPEWIRE_RUNTIME_DIR=sdir, PULSE_RUNTIME_PATH=os.path.join(sdir, "pulse"),
                PULSE_SERVER="unix:" + os.path.join(sdir, "pulse", "native"))


class Play:
    """An application of the session playing @path (pw-play or paplay)."""

    def __init__(self, env, sdir, path, tool="pw-play"):
        self.p = subprocess.Popen([tool, path], env=app_env(env, sdir), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)

    def wait(self, timeout):
        """Until it ends, at most @timeout s. pw-play waits for PipeWire to
        drain its stream before it exits, and on this busy machine that
        wait has hung now and then after its sound had played: it is then
        stopped, and the checks judge what the client heard."""
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            print("  note: %s did not end by itself within %d s" % (self.p.args[0], timeout))
            self.p.terminate()
            self.p.wait(5)


def seat_config(env, tmp, port, name, public_port=0):
    """A seat on @port; its clients are sent to @public_port for their
    session (a relay in front of it), else to @port."""
    cfg = os.path.join(tmp, name + ".conf")
    with open(cfg, "w") as f:
        f.write("[daemon]\nlisten-address=127.0.0.1\nport=%d\npublic-port=%d\ntoken-store=%s/%s-tokens\n"
                "runtime-directory=%s/%s-seat\ncontrol-socket=%s/%s-ctl\n[session]\ndesktop=kiosk\n"
                "command=foot\nallow-root=true\n"
                % (port, public_port, tmp, name, tmp, name, env["XDG_RUNTIME_DIR"], name))
    return cfg


def add_token(env, cfg, name):
    return subprocess.run([WAYRAYCTL, "--config", cfg, "token-add", name, "--user", e2e.ME], env=env,
                          capture_output=True, text=True).stdout.strip()


def client_audio_stats(c):
    c.send("stats")
    m = c.expect(r"^audio .*", 5)
    return m.group(0) if m else ""


def stat_of(line, key):
    m = re.search(key + r"=\(guint64\)(\d+)", line)
    return int(m.group(1)) if m else -1


def playback(env, tmp, port):
    """Tones played in the session reach the client; two sessions' sound
    never mixes; silence costs nothing; the microphone reaches the
    session."""
    cfg = seat_config(env, tmp, port, "sound")
    tone440, tone660, tone1k = (os.path.join(tmp, n) for n in ("440.wav", "660.wav", "1k.wav"))
    make_tone(tone440, 440, 2.0)
    make_tone(tone660, 660, 2.0)
    make_tone(tone1k, 1000, 3.0)
    token, daemon, log = start_seat(env, tmp, cfg, "sound")
    token2 = add_token(env, cfg, "sound2")
    a = b = None
    try:
        wait_for(lambda: "ready on port" in log(), timeout=20)
        out_a, out_b = os.path.join(tmp, "a.wav"), os.path.join(tmp, "b.wav")
        a, ok = attach_client(env, port, token, ["--audio-file", out_a, "--microphone-file", tone1k], 1)
        check("a client with sound attaches to a new session", ok, "\n".join(a.lines) + log()[-800:])
        sdir = sound_dir(tmp, "sound", 1)
        check("the session has its own sound server (PipeWire, PulseAudio, a session bus)",
              sdir is not None and all(os.path.exists(os.path.join(sdir, n))
                                       for n in ("pipewire-0", "pulse/native", "bus")),
              str(sdir) + log()[-800:])
        if sdir is None:
            return
        pactl = lambda: subprocess.run(["pactl", "info"], env=app_env(env, sdir), capture_output=True,  # noqa: E731
                                       text=True).stdout
        # The microphone appears with the client's microphone.
        check("its default sink and source are WayRay's",
              "Default Sink: wayray-speakers" in pactl()
              and wait_for(lambda: "Default Source: wayray-microphone" in pactl(), timeout=10), pactl())

        # The microphone: the client plays its 1 kHz file from attach on.
        rec = os.path.join(tmp, "mic.wav")
        r = subprocess.Popen(["pw-record", "--target", "wayray-microphone", rec], env=app_env(env, sdir),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2.0)
        r.terminate()
        r.wait(5)
        mic = read_wav(rec)
        check("the client's microphone is recorded in the session (1 kHz)",
              blocks_with(mic, 1000) >= 100, "%d blocks of 1 kHz in %d samples" % (blocks_with(mic, 1000), len(mic)))

        b, ok = attach_client(env, port, token2, ["--audio-file", out_b, "--no-microphone"], 1)
        check("a second session with sound starts", ok, "\n".join(b.lines) + log()[-800:])
        sdir2 = sound_dir(tmp, "sound", 2)
        time.sleep(0.5)
        p1 = Play(env, sdir, tone440)
        p2 = Play(env, sdir2, tone660, tool="paplay")
        p1.wait(10)
        p2.wait(10)
        time.sleep(1.0)
        stats_a = client_audio_stats(a)
        time.sleep(1.0)
        stats_a2 = client_audio_stats(a)
        print("  first client: " + stats_a2)
        check("a quiet session sends no audio packets",
              stat_of(stats_a, "received") > 0 and stat_of(stats_a2, "received") == stat_of(stats_a, "received"),
              stats_a + " / " + stats_a2)
        gate = subprocess.run([WAYRAYCTL, "--config", cfg, "stats", "1"], env=env, capture_output=True,
                              text=True).stdout
        check("wayrayctl stats shows the session's sound gate and microphone playout",
              "wayray-audio-gate" in gate and "wayray-playout" in gate, gate)
        a.quit()
        b.quit()
        a = b = None
        # A client with sound attaching to a quiet session: its sound pad
        # comes only with the session's next sound, and the picture must
        # not wait for it.
        a, ok = attach_client(env, port, token, ["--audio-file", os.path.join(tmp, "quiet.wav")], 0)
        check("a client with sound gets the picture of a quiet session at once", ok, "\n".join(a.lines))
        a.quit()
        a = None
        sa, sb = read_wav(out_a), read_wav(out_b)
        la = levels(sa, 440)
        on = [x for x in la if x > 0.1]
        check("pw-play's 440 Hz tone is played by the client for its 2 s",
              190 <= len(on) <= 215, "%d blocks of 440 Hz in %d samples" % (len(on), len(sa)))
        mean = sum(on) / len(on) if on else 0
        check("at its level (0.5 of full scale, within 15 %)", 0.425 <= mean <= 0.575, "%.3f" % mean)
        # A packet late on this busy machine (two sessions, two clients, two
        # sound servers on two cores) is concealed: at most two 10 ms blocks
        # in a row without the tone.
        check("with no gap longer than 20 ms inside it", silent_gaps(sa, 440)[0] <= 2, str(silent_gaps(sa, 440)))
        check("paplay's 660 Hz tone in the second session reaches its client",
              190 <= blocks_with(sb, 660) <= 215, "%d blocks" % blocks_with(sb, 660))
        # 100 ms blocks: 10 Hz apart, so one tone does not leak into the
        # other's measure; 0.05 is 20 dB under the tones (a click of the
        # playout buffer's drift correction stays under it).
        mixed_a, mixed_b = blocks_with(sa, 660, 0.05, 4800), blocks_with(sb, 440, 0.05, 4800)
        check("the two sessions' sound never mixes",
              blocks_with(sa, 440, 0.1, 4800) >= 18 and mixed_a == 0 and mixed_b == 0,
              "660 Hz in the first: %d, 440 Hz in the second: %d (100 ms blocks)" % (mixed_a, mixed_b))
    finally:
        for c in (a, b):
            if c:
                c.quit()
        shutdown(env, cfg, daemon)


def impaired(env, tmp, port):
    """10 % loss and 50 ms each way: the tone comes through with no hole
    longer than the decoder conceals."""
    relay = Relay(port, delay_s=0.05, delay_up_s=0.05)
    cfg = seat_config(env, tmp, port, "lossy", relay.port)
    tone = os.path.join(tmp, "lossy440.wav")
    make_tone(tone, 440, 4.0)
    token, daemon, log = start_seat(env, tmp, cfg, "lossy")
    c = None
    try:
        wait_for(lambda: "ready on port" in log(), timeout=20)
        out = os.path.join(tmp, "lossy.wav")
        c = e2e.Client(env, relay.port, token, "640x480", ["--audio-file", out, "--no-microphone"])
        ok = c.expect(r"state attached .* new=1", 60) is not None
        check("a client behind 50 ms each way attaches", ok, "\n".join(c.lines) + log()[-800:])
        relay.loss = 0.10         # then the link loses a tenth of its datagrams, both ways
        sdir = sound_dir(tmp, "lossy", 1)
        time.sleep(1.0)
        Play(env, sdir, tone).wait(15)
        time.sleep(1.0)
        stats = client_audio_stats(c)
        m = c.expect(r"^link .*datagrams-received=\(guint64\)(\d+)", 5)
        received = int(m.group(1)) if m else -1
        time.sleep(2.5)           # the worker's statistics are up to 2 s old
        server = subprocess.run([WAYRAYCTL, "--config", cfg, "stats", "1"], env=env, capture_output=True,
                                text=True).stdout
        m = re.search(r"^net: .*datagrams-sent=\(guint64\)(\d+)", server, re.M)
        sent = int(m.group(1)) if m else -1
        c.quit()
        c = None
        check("the sound went as datagrams", sent >= 380, server)
        check("about a tenth of them were lost on the way, never resent", 0.8 * sent <= received <= 0.97 * sent,
              "%d sent, %d received" % (sent, received))
        s = read_wav(out)
        n = blocks_with(s, 440)
        longest, holes = silent_gaps(s, 440)
        print("  impaired link: %d blocks of 440 Hz, longest hole %d blocks, %d in all; %s" % (n, longest, holes, stats))
        check("the tone's 4 s come through", 370 <= n <= 420, "%d blocks" % n)
        check("with no hole longer than 30 ms (concealment covers the losses)", longest <= 3,
              "longest %d blocks, %d in all; %s" % (longest, holes, stats))
    finally:
        if c:
            c.quit()
        shutdown(env, cfg, daemon)
        relay.close()


def hotdesk(env, tmp, port):
    """The sound follows the session to the next client, and nothing the
    session played while detached is played there."""
    cfg = seat_config(env, tmp, port, "desk")
    first, second = os.path.join(tmp, "desk440.wav"), os.path.join(tmp, "desk880.wav")
    make_tone(first, 440, 1.5)
    make_tone(second, 880, 5.0)
    token, daemon, log = start_seat(env, tmp, cfg, "desk")
    c = None
    try:
        wait_for(lambda: "ready on port" in log(), timeout=20)
        out1, out2 = os.path.join(tmp, "desk1.wav"), os.path.join(tmp, "desk2.wav")
        c, ok = attach_client(env, port, token, ["--audio-file", out1, "--no-microphone"], 1)
        sdir = sound_dir(tmp, "desk", 1)
        time.sleep(0.5)
        Play(env, sdir, first).wait(10)
        time.sleep(1.0)          # pw-play ends before the last of its sound is played
        c.quit()
        # Detached: the session plays on, to nobody.
        p = Play(env, sdir, second)
        played = time.monotonic()
        time.sleep(1.0)
        c, ok = attach_client(env, port, token, ["--audio-file", out2, "--no-microphone"], 0)
        attached = time.monotonic() - played
        check("the session's next client attaches while it plays", ok, "\n".join(c.lines) + log()[-800:])
        p.wait(10)
        ended = time.monotonic() - played
        time.sleep(0.5)
        c.quit()
        c = None
        s1, s2 = read_wav(out1), read_wav(out2)
        on2 = [i for i, a in enumerate(levels(s2, 880)) if a > 0.1]
        print("  second client: attached with a frame %.2f s after the tone began (pw-play ended at %.2f s); "
              "%d blocks in its file, the tone from block %s to %s"
              % (attached, ended, len(s2) // BLOCK, on2[0] if on2 else None, on2[-1] if on2 else None))
        on1 = [i for i, a in enumerate(levels(s1, 440)) if a > 0.1]
        print("  first client: %d blocks in its file, the tone from block %s to %s"
              % (len(s1) // BLOCK, on1[0] if on1 else None, on1[-1] if on1 else None))
        check("the first client played the first tone", blocks_with(s1, 440) >= 140, str(blocks_with(s1, 440)))
        # The rest is what the session played from the client's attach to
        # pw-play's end (plus what pw-play had queued); how soon the client
        # attaches depends on the machine's load, so the bounds follow it.
        n = blocks_with(s2, 880)
        rest = (ended - attached) * 100
        check("the second client plays the rest of the second tone, from its attach on (5 s tone, attach after 1 s)",
              rest >= 100 and 0.7 * (rest - 30) <= n <= rest + 50,
              "%d blocks of 880 Hz; %.0f blocks from its attach to the tone's end" % (n, rest))
        check("and nothing the session played before: no first tone, no burst of old sound",
              blocks_with(s2, 440, 0.05, 4800) == 0, "%d blocks of 440 Hz" % blocks_with(s2, 440, 0.05, 4800))
    finally:
        if c:
            c.quit()
        shutdown(env, cfg, daemon)


def unlinked(env, tmp, port):
    """A session whose capture of its speakers PipeWire never links (the
    pipeline file names a sink that is not there; a slow session manager
    looks the same for a while) starts at once: the capture starts after
    the rest, and its failure is logged and tried again."""
    pipelines = os.path.join(tmp, "unlinked-pipelines")
    os.mkdir(pipelines)
    text = open(os.path.join(e2e.SOURCE, "pipelines", "server-session.pipeline")).read()
    if "target-object=${SPEAKERS}" not in text:
        check("the server pipeline file captures ${SPEAKERS}", False, "no target-object=${SPEAKERS} in it")
        return
    with open(os.path.join(pipelines, "server-session.pipeline"), "w") as f:
        f.write(text.replace("target-object=${SPEAKERS}", "target-object=wayray-no-such-sink"))
    cfg = seat_config(env, tmp, port, "unlinked")
    with open(cfg, "a") as f:
        f.write("[pipelines]\ndirectory=%s\n" % pipelines)
    token, daemon, log = start_seat(env, tmp, cfg, "unlinked")
    c = None
    try:
        wait_for(lambda: "ready on port" in log(), timeout=20)
        t0 = time.monotonic()
        c, ok = attach_client(env, port, token, ["--no-microphone"], 1)
        check("a session whose sound capture is never linked starts at once, with frames",
              ok and time.monotonic() - t0 < 15, "%.1f s\n%s\n%s" % (time.monotonic() - t0, "\n".join(c.lines),
                                                                  log()[-800:]))
        check("the capture that does not start is logged and tried again",
              wait_for(lambda: re.search(r"session 1: speakers did not start within \d+ s; trying again", log()),
                       timeout=60), log()[-800:])
        alive = c.p.poll() is None
        if alive:
            c.send("type echo still-here\\n")
        check("and the session goes on meanwhile", alive and c.expect(r"^typed$", 10) is not None,
              "\n".join(c.lines[-4:]))
    finally:
        if c:
            c.quit()
        shutdown(env, cfg, daemon)


def main():
    tmp = tempfile.mkdtemp(prefix="wayray-audio-")
    run = os.path.join(tmp, "run")
    os.mkdir(run, 0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=run, XDG_CONFIG_HOME=os.path.join(tmp, "config"),
               WAYRAY_PIPELINES_PATH=os.path.join(e2e.SOURCE, "pipelines"))
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("DISPLAY", None)
    port = 30000 + os.getpid() % 20000
    only = sys.argv[1:]
    for fn in (playback, impaired, hotdesk, unlinked):
        if not only or fn.__name__ in only:
            fn(env, tmp, port)
    passed = sum(1 for r in e2e.results if r)
    failed = len(e2e.results) - passed
    print("audio: %d passed, %d failed" % (passed, failed))
    if failed == 0:
        subprocess.run(["rm", "-rf", tmp])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
