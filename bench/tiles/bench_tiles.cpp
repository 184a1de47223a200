/* Benchmark of the lossless tile path at 1920x1080: bytes per frame and
 * per second, encode and decode time per frame (median, p99), for
 * synthetic desktop workloads, against two baselines measured on the same
 * frames: the raw damaged pixels and zstd (level 3) of the damaged pixels.
 * Encoding and decoding run on one core (threads=1) unless a row says
 * otherwise. Run: ./dev bench tiles (or bench-tiles --zstd-level N)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "recording.h"
#include "screengen.h"
#include "wayraytilecodec.h"

#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

using namespace screengen;
namespace wt = wayray::tiles;

static constexpr int W = 1920, H = 1080;

struct Result {
  std::string name;
  double rate;                  /* frames per second of the workload */
  int frames = 0;
  size_t bytes = 0, raw = 0, zstd = 0;
  std::vector<double> enc_ms, enc_wall_ms, dec_ms, msg_bytes;
  wt::EncodeStats stats;
};

/* CPU time of the whole process (all threads): the machine is shared, so
 * wall-clock time would measure the neighbours' load. */
static double
cpu_ms ()
{
  timespec t;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double
percentile (std::vector<double> v, double p)
{
  if (v.empty ())
    return 0;
  std::sort (v.begin (), v.end ());
  size_t i = std::min (v.size () - 1, (size_t) (p * (v.size () - 1) + 0.5));
  return v[i];
}

/* Runs @frames steps of @step on a screen prepared by @setup; the first
 * (full) frame is encoded but not counted. */
static wt::Compressor compressor = wt::Compressor::ZSTD;
static int zstd_level = 1;      /* --zstd-level N: the element's zstd-level */

static Result
run (const std::string &name, double rate, int frames, unsigned threads,
    const std::function<void (Screen &, Rng &)> &setup,
    const std::function<std::vector<Rect> (Screen &, Rng &, int)> &step)
{
  Result res;
  res.name = name;
  res.rate = rate;
  Screen screen (W, H);
  Rng rng (42);
  setup (screen, rng);

  wt::EncoderSettings set;
  set.threads = threads;
  set.compressor = compressor;
  set.zstd_level = zstd_level;
  wt::Encoder enc;
  enc.configure (W, H, set);
  wt::Decoder dec;
  std::vector<uint8_t> fb ((size_t) W * H * 4);
  wt::Surface fbs = {fb.data (), (size_t) W * 4, W, H};
  ZSTD_CCtx *zc = ZSTD_createCCtx ();
  std::vector<uint8_t> msg, gathered, zbuf;
  std::vector<wt::Rect> out_damage;
  std::string error;

  for (int i = -1; i < frames; i++) {
    std::vector<Rect> damage;
    if (i >= 0)
      damage = step (screen, rng, i);
    std::vector<wt::Rect> d;
    for (const auto &r : damage) {
      Rect c = screen.clip (r);
      if (c.w > 0)
        d.push_back ({c.x, c.y, c.w, c.h});
    }
    wt::ConstSurface cs = {screen.px.data (), screen.stride (), W, H};
    msg.clear ();
    wt::EncodeStats st;
    double t0 = cpu_ms ();
    auto w0 = std::chrono::steady_clock::now ();
    bool sent = enc.encode (cs, i < 0 ? nullptr : d.data (), d.size (), nullptr, 0, msg, &st);
    double t1 = cpu_ms ();
    auto w1 = std::chrono::steady_clock::now ();
    if (sent) {
      out_damage.clear ();
      if (!dec.decode (msg.data (), msg.size (), fbs, out_damage, error)) {
        fprintf (stderr, "%s: decode failed: %s\n", name.c_str (), error.c_str ());
        exit (1);
      }
    }
    double t2 = cpu_ms ();
    if (fb != screen.px) {
      fprintf (stderr, "%s: frame %d: client differs\n", name.c_str (), i);
      exit (1);
    }
    if (i < 0)
      continue;
    res.frames++;
    res.bytes += sent ? msg.size () : 0;
    res.msg_bytes.push_back (sent ? msg.size () : 0);
    res.enc_ms.push_back (t1 - t0);
    res.enc_wall_ms.push_back (std::chrono::duration<double, std::milli> (w1 - w0).count ());
    res.dec_ms.push_back (t2 - t1);
    for (int k = 0; k < wt::kNumOpTypes; k++)
      res.stats.ops[k] += st.ops[k];
    /* baselines: the damaged pixels as reported, raw and zstd'ed */
    gathered.clear ();
    for (const auto &r : d)
      for (int y = 0; y < r.h; y++)
        gathered.insert (gathered.end (), screen.at (r.x, r.y + y),
            screen.at (r.x, r.y + y) + (size_t) r.w * 4);
    res.raw += gathered.size ();
    if (!gathered.empty ()) {
      zbuf.resize (ZSTD_compressBound (gathered.size ()));
      res.zstd += ZSTD_compressCCtx (zc, zbuf.data (), zbuf.size (), gathered.data (),
          gathered.size (), 3);
    }
  }
  ZSTD_freeCCtx (zc);
  return res;
}

static void
print (const Result &r)
{
  double n = r.frames;
  double bpf = r.bytes / n, raw = r.raw / n, z = r.zstd / n;
  printf ("%-32s %5.0f %9.0f %8.0f %10.0f %10.0f %9.0f %6.1f%% %7.3f %7.3f %7.3f %7.3f %8.3f\n",
      r.name.c_str (), r.rate, bpf, percentile (r.msg_bytes, 0.5), bpf * r.rate / 1024.0, raw, z,
      100.0 * bpf / std::max (z, 1.0), percentile (r.enc_ms, 0.5), percentile (r.enc_ms, 0.99),
      percentile (r.dec_ms, 0.5), percentile (r.dec_ms, 0.99), percentile (r.enc_wall_ms, 0.5));
}

static void
print_ops (const Result &r)
{
  printf ("  %-28s", r.name.c_str ());
  for (int k = 1; k < wt::kNumOpTypes; k++)
    if (r.stats.ops[k])
      printf (" %s=%llu", wt::op_name (k), (unsigned long long) r.stats.ops[k]);
  printf ("\n");
}

/* Two overlapping application windows over a desktop background. */
static void
desktop (Screen &s, Rng &rng, bool a_on_top)
{
  s.fill ({0, 0, W, H}, bgrx (0x2d, 0x3e, 0x50));
  s.fill ({0, 0, W, 28}, bgrx (0x20, 0x20, 0x20));     /* panel */
  Terminal a, b;
  a.area = {100, 80, 1100, 760};
  b.area = {700, 240, 1100, 760};
  b.bg = bgrx (0xfa, 0xfa, 0xfa);
  b.fg = bgrx (0x20, 0x20, 0x20);
  Rng ra (1), rb (2);
  if (a_on_top) {
    b.fill_text (s, rb);
    a.fill_text (s, ra);
  } else {
    a.fill_text (s, ra);
    b.fill_text (s, rb);
  }
}

int
main (int argc, char **argv)
{
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp (argv[i], "--zstd-level") == 0)
      zstd_level = atoi (argv[i + 1]);
  printf ("WayRay tile codec benchmark, %dx%d, tile 64, zstd level %d (at least 6 for <= 4 "
      "tiles), cache 2048 tiles\n", W, H, zstd_level);
  printf ("bytes: mean and median per frame; KiB/s at the workload's rate (recordings: their "
      "own); baselines (raw, zstd -3 of the damaged pixels) per frame on the same damage\n");
  printf ("times: CPU ms per frame (process CPU time, all threads; one encoder thread unless "
      "noted); enc wall = encode wall-clock p50\n\n");
  printf ("%-32s %5s %9s %8s %10s %10s %9s %7s %7s %7s %7s %7s %8s\n", "workload", "fps",
      "bytes/fr", "p50 B/fr", "KiB/s", "raw/fr", "zstd/fr", "vs zstd", "enc p50", "enc p99",
      "dec p50", "dec p99", "enc wall");

  std::vector<Result> all;
  Terminal term;
  term.area = {100, 80, 1100, 760};

  /* typing: one character per frame (cell and cursor damaged) */
  all.push_back (run ("typing (1 char/frame)", 10, 600, 1,[&](Screen & s, Rng & rng) {
            desktop (s, rng, true);
            term.col = 0;
            term.row = 20;
          },[&](Screen & s, Rng & rng, int i) {
            return std::vector<Rect> { term.type (s, rng.chance (15) ? ' ' : rng.range (33, 126))};
          }));

  /* scrolling: 1 line per frame at 60 fps, and 16 lines per frame (about
   * 1000 lines/s) */
  for (int lines : {1, 16}) {
    std::string name = "scroll " + std::to_string (lines) + " line" + (lines > 1 ? "s" : "") +
        "/frame";
    all.push_back (run (name, 60, 300, 1,[&](Screen & s, Rng & rng) {
              desktop (s, rng, true);
            },[&, lines](Screen & s, Rng & rng, int i) {
              return std::vector<Rect> { term.scroll (s, lines, rng)};
            }));
  }

  /* dragging an 800x600 text window by (6, 3) pixels per frame */
  {
    Rect win = {300, 200, 800, 600};
    Screen content (800, 600);
    all.push_back (run ("drag a window (6,3 px/frame)", 60, 120, 1,[&](Screen & s, Rng & rng) {
              s.fill ({0, 0, W, H}, bgrx (0x2d, 0x3e, 0x50));
              Terminal t;
              t.area = win;
              t.bg = bgrx (0xfa, 0xfa, 0xfa);
              t.fg = bgrx (0x20, 0x20, 0x20);
              t.fill_text (s, rng);
              for (int y = 0; y < win.h; y++)
                memcpy (content.at (0, y), s.at (win.x, win.y + y), (size_t) win.w * 4);
            },[&](Screen & s, Rng & rng, int i) {
              int dir = (i / 60) % 2 ? -1 : 1;  /* there and back */
              Rect to = {win.x + 6 * dir, win.y + 3 * dir, win.w, win.h};
              s.fill (win, bgrx (0x2d, 0x3e, 0x50));
              for (int y = 0; y < win.h; y++)
                memcpy (s.at (to.x, to.y + y), content.at (0, y), (size_t) win.w * 4);
              int x0 = std::min (win.x, to.x), y0 = std::min (win.y, to.y);
              Rect d = {x0, y0, win.w + 6, win.h + 3};
              win = to;
              return std::vector<Rect> { d};
            }));
  }

  /* switching between two windows: every frame raises the other one */
  {
    Screen pics[2] = {Screen (W, H), Screen (W, H)};
    Rng r0 (5);
    desktop (pics[0], r0, true);
    desktop (pics[1], r0, false);
    Rect changed = {100, 80, 1700, 920};
    all.push_back (run ("switch two windows", 2, 200, 1,[&](Screen & s, Rng & rng) {
              s = pics[0];
            },[&](Screen & s, Rng & rng, int i) {
              s.copy_from (pics[(i + 1) % 2], changed);
              return std::vector<Rect> { changed};
            }));
  }

  /* an animated region: a 640x360 moving pattern (video-like, new content
   * on every frame) in the lossless path */
  {
    Rect anim = {800, 400, 640, 360};
    all.push_back (run ("animated region 640x360", 30, 150, 1,[&](Screen & s, Rng & rng) {
              desktop (s, rng, true);
            },[&](Screen & s, Rng & rng, int i) {
              for (int y = 0; y < anim.h; y++)
                for (int x = 0; x < anim.w; x++) {
                  int u = x + 3 * i, v = y + 2 * i;
                  uint32_t c = bgrx ((u * v / 64) & 0xff, (u ^ v) & 0xff, (u + v + i) & 0xff);
                  memcpy (s.at (anim.x + x, anim.y + y), &c, 4);
                }
              return std::vector<Rect> { anim};
            }));
  }

  /* full frames: a whole new desktop every frame (nothing cached) */
  for (int variant = 0; variant < 3; variant++) {
    unsigned threads = variant == 1 ? 2 : 1;
    compressor = variant == 2 ? wt::Compressor::LZ4 : wt::Compressor::ZSTD;
    std::string name = std::string ("full frame, new text") + (variant == 1 ? " (2 thr)" :
        variant == 2 ? " (lz4)" : "");
    all.push_back (run (name, 1, 40, threads,[&](Screen & s, Rng & rng) {
              desktop (s, rng, true);
            },[&](Screen & s, Rng & rng, int i) {
              Terminal t;
              t.area = {0, 28, W, H - 28};
              t.fill_text (s, rng);
              return std::vector<Rect> { {0, 0, W, H}};
            }));
  }
  compressor = wt::Compressor::ZSTD;

  /* Recorded sessions: real applications in wayraysrc at 1920x1080 */
  const char *names[][2] = {
    {"typing", "rec: foot, typing"},
    {"scrolling", "rec: foot, scrolling ~60 l/s"},
    {"fast-scrolling", "rec: foot, scrolling ~290 l/s"},
    {"text-1000", "rec: foot, text file 1000 l/s"},
    {"switching", "rec: foot, two screens alternate"},
    {"windows", "rec: two foot windows, Alt+Tab 4/s"},
    {"animation", "rec: weston-simple-shm"},
  };
  std::vector<Result> recorded;
  for (auto &nm : names) {
    recording::Recording rec;
    std::string error;
    std::string path = std::string (WAYRAY_RECORDINGS_DIR) + "/" + nm[0] + ".wrrec";
    if (!recording::read_file (path, rec, error) || rec.width != W || rec.height != H ||
        rec.frames.size () < 3) {
      fprintf (stderr, "skipping %s: %s\n", path.c_str (), error.c_str ());
      continue;
    }
    double secs = (rec.frames.back ().pts - rec.frames.front ().pts) / 1e9;
    double rate = secs > 0 ? (rec.frames.size () - 1) / secs : 60;
    auto dec = std::make_shared<wt::Decoder> ();
    auto apply = [dec, &rec] (Screen & s, size_t i) {
      std::vector<wt::Rect> d;
      std::string e;
      wt::Surface fb = {s.px.data (), s.stride (), s.w, s.h};
      if (!dec->decode (rec.frames[i].message.data (), rec.frames[i].message.size (), fb, d, e)) {
        fprintf (stderr, "bad recording: %s\n", e.c_str ());
        exit (1);
      }
    };
    recorded.push_back (run (nm[1], rate, (int) rec.frames.size () - 1, 1,
            [&] (Screen & s, Rng &) {
              apply (s, 0);
            },
            [&] (Screen & s, Rng &, int i) {
              apply (s, i + 1);
              std::vector<Rect> dmg;
              for (const auto &r : rec.frames[i + 1].damage)
                dmg.push_back ({r.x, r.y, r.w, r.h});
              return dmg;
            }));
  }

  printf ("-- synthetic (screengen: anti-aliased glyph text, two windows)\n");
  for (const auto &r : all)
    print (r);
  printf ("-- recorded (bench/tiles/recordings, made with wayray-tiles-record)\n");
  for (const auto &r : recorded)
    print (r);
  printf ("\nencode+decode p50 (CPU, one thread): keystroke %.3f ms, full frame %.3f ms "
      "(zstd), %.3f ms (lz4)\n", percentile (all[0].enc_ms, 0.5) + percentile (all[0].dec_ms, 0.5),
      percentile (all[6].enc_ms, 0.5) + percentile (all[6].dec_ms, 0.5),
      percentile (all[8].enc_ms, 0.5) + percentile (all[8].dec_ms, 0.5));
  printf ("\nbytes per typed character: %.0f (the damage of one keystroke: %zu pixels raw = %zu "
      "bytes)\n", (double) all[0].bytes / all[0].frames, all[0].raw / all[0].frames / 4,
      all[0].raw / all[0].frames);
  if (!recorded.empty ())
    printf ("recorded typing: %.0f bytes per frame, median %.0f (about one keystroke echoed by "
        "foot per frame; %.0f damaged pixels reported per frame)\n",
        (double) recorded[0].bytes / recorded[0].frames, percentile (recorded[0].msg_bytes, 0.5),
        (double) recorded[0].raw / recorded[0].frames / 4);
  printf ("\ncodings used:\n");
  for (const auto &r : all)
    print_ops (r);
  for (const auto &r : recorded)
    print_ops (r);
  return 0;
}
