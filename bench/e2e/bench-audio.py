#!/usr/bin/env python3
"""bench-audio: the session's sound at the thin client.

wayrayd with the shipped server-session.pipeline (a PipeWire, wireplumber,
pipewire-pulse and session bus in the session) and a headless wayray-client
with client-session.pipeline writing what it would play (--audio-file),
QUIC on loopback through the counting relay. An application in the
session, pw-cat, plays what this benchmark writes to it in real time, 10
ms at a time (its node latency 10 ms): silence, and now and then a click
(10 ms of 1 kHz at half of full scale) or a tone.

Measured:
  * click -> client: from writing a click to pw-cat to the first sample of
    it reaching the client's output (its WAV writer: the decoded sound as
    the playout buffer releases it, 10 ms before it would play on a
    device). Each click comes after 300 ms of silence, so each starts a
    talkspurt (the gate closed in between), as a notification sound does.
    Median, p90, p99, max.
  * bytes per second on the link (both ways, UDP payload + 28) while a
    tone plays and while the session is silent.
  * A/V offset: a clip played in the session by one GStreamer pipeline
    (waylandsink, pulsesink): a white frame and a click at the start of
    every second; the click's arrival at the client minus the white
    frame's (its compositor's output), per flash.
  * CPU per 10 s while playing, while pw-cat plays silence, and idle (no
    application plays anything): the session's worker
    (capture, gate, Opus encoding, the rest of the pipeline idle), the
    sound server's processes (pipewire, wireplumber, pipewire-pulse,
    dbus-daemon, pw-cat), and the client.

Usage: bench-audio [--clicks N]
"""
import argparse
import glob
import math
import os
import re
import struct
import subprocess
import sys
import threading
import time
import wave

from wrbench import FOOT, Seat, cpu_seconds, descendants, tree_cpu
import wrclient  # noqa: E402  (wrbench puts it on the path)

RATE = 48000
CHUNK = RATE // 100   # 10 ms


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


def tone(freq, frames, amplitude=0.5):
    out = bytearray()
    for i in range(frames):
        v = int(amplitude * 32767 * math.sin(2 * math.pi * freq * i / RATE))
        out += struct.pack("<hh", v, v)
    return bytes(out)


class Player:
    """pw-cat in the session, fed 10 ms at a time in real time."""

    def __init__(self, env):
        self.proc = subprocess.Popen(["pw-cat", "--playback", "--rate", str(RATE), "--channels", "2",
                                      "--format", "s16", "--latency", "480/48000", "-"],
                                     stdin=subprocess.PIPE, env=env, stderr=subprocess.DEVNULL)
        self.silence = bytes(CHUNK * 4)
        self.click = tone(1000, CHUNK)
        self.a440 = tone(440, RATE)     # one second, repeated while playing
        self.mode = "silence"
        self.pending_click = threading.Event()
        self.clicked_at = 0.0
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        nxt = time.monotonic()
        pos = 0
        while self.running:
            if self.pending_click.is_set():
                self.pending_click.clear()
                self.clicked_at = time.monotonic()
                chunk = self.click
            elif self.mode == "tone":
                chunk = self.a440[pos:pos + CHUNK * 4]
                pos = (pos + CHUNK * 4) % len(self.a440)
            else:
                chunk = self.silence
            try:
                self.proc.stdin.write(chunk)
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                return
            nxt += 0.01
            time.sleep(max(0.0, nxt - time.monotonic()))

    def stop(self):
        self.running = False
        self.thread.join(2)
        self.proc.stdin.close()
        self.proc.terminate()
        self.proc.wait(5)


SOUND_PROGRAMS = ("pipewire", "wireplumber", "pipewire-pulse", "dbus-daemon", "pw-cat")


def sound_pids(worker):
    out = []
    for p in descendants(worker):
        try:
            name = open("/proc/%d/comm" % p).read().strip()
        except OSError:
            continue
        if name in SOUND_PROGRAMS:
            out.append(p)
    return out


def measure(seat, client, worker, player, mode, seconds):
    """(bytes/s on the link, worker CPU, sound server CPU, client CPU), per
    @seconds, with the player in @mode."""
    if player:
        player.mode = mode
    time.sleep(1.0)
    snd = sound_pids(worker) + ([player.proc.pid] if player else [])
    b0 = seat.relay.counts()
    c0 = (cpu_seconds(worker), tree_cpu(snd), cpu_seconds(client.p.pid))
    time.sleep(seconds)
    b1 = seat.relay.counts()
    c1 = (cpu_seconds(worker), tree_cpu(snd), cpu_seconds(client.p.pid))
    rate = (b1[0] - b0[0] + b1[1] - b0[1]) / seconds
    return (rate,) + tuple((c1[i] - c0[i]) * 10.0 / seconds for i in range(3))


def av_offsets(seat, client, env, flashes):
    """A clip played in the session by one GStreamer pipeline (waylandsink
    and pulsesink on one clock): black 320x240 frames at 30 fps, a white
    frame at the start of every second and a click with it. For each
    flash: the sound's arrival at the client minus the picture's (ms)."""
    w, h, fps = 320, 240, 30
    black = bytes([16]) * (w * h) + bytes([128]) * (w * h // 2)
    white = bytes([235]) * (w * h) + bytes([128]) * (w * h // 2)
    seconds = flashes + 2
    video = os.path.join(seat.tmp, "clip.yuv")
    with open(video, "wb") as f:
        for k in range(seconds * fps):
            f.write(white if k % fps == 0 and k >= fps else black)
    click = tone(1000, CHUNK)
    audio = os.path.join(seat.tmp, "clip.wav")
    with wave.open(audio, "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(RATE)
        for sec in range(seconds):
            f.writeframes((click if sec >= 1 else bytes(CHUNK * 4)) + bytes((RATE - CHUNK) * 4))
    rows = wrclient.parse_listing(seat.ctl("list"))
    socket = rows[0].get("socket", "") if rows else ""
    sdir = env["PIPEWIRE_RUNTIME_DIR"]
    penv = dict(env, WAYLAND_DISPLAY=socket, PULSE_SERVER="unix:" + os.path.join(sdir, "pulse", "native"))
    player = subprocess.Popen(["gst-launch-1.0", "-q", "filesrc", "location=" + video, "!", "rawvideoparse",
                               "width=%d" % w, "height=%d" % h, "format=i420", "framerate=%d/1" % fps, "!",
                               "videoconvert", "!", "waylandsink", "filesrc", "location=" + audio, "!", "wavparse",
                               "!", "audioconvert", "!", "audioresample", "!", "pulsesink"],
                              env=penv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    offsets = []
    try:
        time.sleep(0.4)           # the clip's first second is black and silent
        for _ in range(flashes):
            client.send("watch 560 300 160 120")
            client.send("wait-sound 0.1")
            got = {}
            deadline = time.monotonic() + 2.5
            while len(got) < 2 and time.monotonic() < deadline:
                m = client.expect(r"^(latency|sound) ([0-9.]+)", max(0.1, deadline - time.monotonic()))
                if m:
                    got[m.group(1)] = float(m.group(2))
            if len(got) == 2:
                offsets.append(got["sound"] - got["latency"])
            time.sleep(0.5)       # past the flash (a white frame, then black again)
    finally:
        player.terminate()
        player.wait(5)
    return offsets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clicks", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--flashes", type=int, default=10)
    args = ap.parse_args()

    seat = Seat("wayray-bench-audio-", ["--audio-file", "/dev/null", "--no-microphone"])
    client = seat.start(FOOT)
    try:
        report = run(seat, client, args)
    finally:
        # Sessions outlive their daemon: end them, whatever happened.
        seat.stop(client)
    print(report)


def run(seat, client, args):
    if not client.expect(r"^first-frame", 30):
        sys.exit("no first frame:\n" + "\n".join(client.lines) + open(seat.log).read()[-2000:])
    found = glob.glob(os.path.join(seat.tmp, "seat", "**", "wayray-sound-1"), recursive=True)
    if not found:
        sys.exit("the session has no sound server:\n" + open(seat.log).read()[-2000:])
    sdir = found[0]
    env = dict(seat.env, PIPEWIRE_RUNTIME_DIR=sdir)
    player = Player(env)
    worker = seat.worker_pid()
    time.sleep(1.0)

    # The same clicks recorded in the session from the speakers' monitor:
    # what the application and PipeWire take before WayRay captures them.
    rec = subprocess.Popen(["pw-record", "--target", "wayray-speakers", "-P", "{ stream.capture.sink=true }",
                            "--latency", "480/48000", "--rate", str(RATE), "--channels", "2", "--format", "s16", "-"],
                           stdout=subprocess.PIPE, env=env, stderr=subprocess.DEVNULL)
    local = {"armed": 0.0, "heard": []}

    def listen():
        while True:
            data = rec.stdout.read(CHUNK)
            if not data:
                return
            if local["armed"] and any(abs(v) >= 8000 for v in struct.unpack("<%dh" % (len(data) // 2), data)):
                local["heard"].append(time.monotonic() - local["armed"])
                local["armed"] = 0.0
    threading.Thread(target=listen, daemon=True).start()
    time.sleep(1.0)

    lat, wayray = [], []
    done = 0
    while done < args.clicks:
        heard = []           # (written, heard at the client), monotonic seconds
        for _ in range(min(25, args.clicks - done)):
            time.sleep(0.3)
            client.send("wait-sound 0.1")
            t0 = time.monotonic()
            local["armed"] = time.monotonic()
            player.pending_click.set()
            m = client.expect(r"^sound ([0-9.]+)", 2)
            done += 1
            if not m:
                continue
            at = t0 + float(m.group(1)) / 1000.0
            if os.environ.get("WAYRAY_BENCH_DEBUG"):
                client.send("stats")
                st = client.expect(r"^audio (.*)", 5)
                out.append("  %.4f %s" % (at, re.sub(r"\(g?u?int64\)|\(double\)", "", st.group(1)) if st else "?"))
            heard.append((player.clicked_at, at))
            # From the click's write, not from the command.
            lat.append((at - player.clicked_at) * 1000.0)
        # When the session's gate let each click in (the worker reports
        # every 2 s): WayRay's own part, capture to the client's output.
        time.sleep(2.5)
        opened = [int(x) / 1e6 for x in re.findall(r"(\d+)",
                                                   seat.stat(r"opened-at=(?:\(guint64\))?\{([^}]*)\}") or "")]
        if os.environ.get("WAYRAY_BENCH_DEBUG"):
            for written, at in heard:
                out.append("click written %.4f heard %.4f; gate opened %s" % (written, at, [
                    "%.4f" % o for o in opened if written - 1 <= o <= at + 1]))
        for written, at in heard:
            before = [o for o in opened if written <= o <= at]
            if before:
                wayray.append((at - before[-1]) * 1000.0)
    rec.terminate()
    playing = measure(seat, client, worker, player, "tone", args.seconds)
    silent = measure(seat, client, worker, player, "silence", args.seconds)
    av = av_offsets(seat, client, env, args.flashes)
    client.send("stats")
    stats = client.expect(r"^audio (.*)", 5)
    gate = seat.stat(r"(wayray-audio-gate[^;]*)")
    player.stop()
    idle = measure(seat, client, worker, None, "", args.seconds)
    out = []
    out.append("bench-audio: pw-cat in a session (PipeWire quantum 10 ms) -> Opus 96 kbit/s 10 ms -> QUIC datagrams "
          "on loopback -> wayrayplayout -> opusdec -> the client's output")
    out.append("")
    out.append("one-way latency of a click (ms)          median    p90    p99    max   (clicks)")
    for name, v in (("captured in the session -> client output", wayray),
                    ("written to pw-cat -> client output", lat)):
        out.append("%-40s %6.1f %6.1f %6.1f %6.1f   (%d of %d)" % (name, pct(v, 0.5), pct(v, 0.9), pct(v, 0.99),
                                                          max(v) if v else float("nan"), len(v), args.clicks))
    loc = [x * 1000.0 for x in local["heard"]]
    out.append("%-40s %6.1f %6.1f   (pw-record of the speakers' monitor, in the session)"
          % ("written to pw-cat -> the session's sink", pct(loc, 0.5), pct(loc, 0.9)))
    out.append("")
    out.append("%-10s %14s %16s %18s %16s" % ("", "link (bytes/s)", "worker CPU/10 s", "sound server/10 s",
                                         "client CPU/10 s"))
    for name, row in (("playing", playing), ("silent", silent), ("idle", idle)):
        out.append("%-10s %14.0f %15.2fs %17.2fs %15.2fs" % ((name,) + row))
    out.append("")
    out.append("A/V offset, a clip's click minus its white frame at the client (ms; + = sound later): "
          "median %.1f  min %.1f  max %.1f  (%d of %d flashes)"
          % (pct(av, 0.5), min(av) if av else float("nan"), max(av) if av else float("nan"), len(av),
             args.flashes))
    out.append("")
    out.append("client playout: %s" % (stats.group(1) if stats else "?"))
    out.append("server gate: %s" % (gate or "?"))

    return "\n".join(out)

if __name__ == "__main__":
    main()
