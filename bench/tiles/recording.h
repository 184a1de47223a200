/* Recorded workloads for bench-tiles: what wayraysrc pushed while a real
 * application ran, frame by frame. A recording stores, per frame, the
 * damage rectangles wayraysrc reported and the frame itself as a lossless
 * tile message (wayraytileenc's format, so recordings stay small); replay
 * decodes the messages back into the exact frames.
 *
 * File: "WRREC1\0\0", u16 width, u16 height, then per frame: u64 pts (ns),
 * u32 n_rects, n_rects x (i32 x, y, w, h), u32 message length, message.
 * All little-endian.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wayraytilecodec.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace recording {

struct Frame {
  uint64_t pts = 0;
  std::vector<wayray::tiles::Rect> damage;
  std::vector<uint8_t> message;
};

struct Recording {
  int width = 0, height = 0;
  std::vector<Frame> frames;
};

static inline bool
read_file (const std::string &path, Recording &rec, std::string &error)
{
  FILE *f = fopen (path.c_str (), "rb");
  if (!f) {
    error = "cannot open " + path;
    return false;
  }
  std::vector<uint8_t> d;
  uint8_t buf[65536];
  size_t n;
  while ((n = fread (buf, 1, sizeof buf, f)) > 0)
    d.insert (d.end (), buf, buf + n);
  fclose (f);
  size_t pos = 0;
  auto need = [&] (size_t k) {
    return pos + k <= d.size ();
  };
  auto u16 = [&] () {
    uint16_t v = d[pos] | (d[pos + 1] << 8);
    pos += 2;
    return v;
  };
  auto u32 = [&] () {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
      v |= (uint32_t) d[pos + i] << (8 * i);
    pos += 4;
    return v;
  };
  if (!need (12) || memcmp (d.data (), "WRREC1\0\0", 8) != 0) {
    error = path + ": not a recording";
    return false;
  }
  pos = 8;
  rec.width = u16 ();
  rec.height = u16 ();
  while (pos < d.size ()) {
    Frame fr;
    if (!need (12)) {
      error = path + ": truncated";
      return false;
    }
    uint64_t lo = u32 (), hi = u32 ();
    fr.pts = lo | (hi << 32);
    uint32_t nr = u32 ();
    if (nr > 4096 || !need ((size_t) nr * 16 + 4)) {
      error = path + ": truncated";
      return false;
    }
    for (uint32_t i = 0; i < nr; i++) {
      wayray::tiles::Rect r;
      r.x = (int32_t) u32 ();
      r.y = (int32_t) u32 ();
      r.w = (int32_t) u32 ();
      r.h = (int32_t) u32 ();
      fr.damage.push_back (r);
    }
    uint32_t len = u32 ();
    if (!need (len)) {
      error = path + ": truncated";
      return false;
    }
    fr.message.assign (d.begin () + pos, d.begin () + pos + len);
    pos += len;
    rec.frames.push_back (std::move (fr));
  }
  return true;
}

static inline void
put_u32 (std::vector<uint8_t> &out, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    out.push_back ((v >> (8 * i)) & 0xff);
}

static inline void
append_frame (std::vector<uint8_t> &out, const Frame &fr)
{
  put_u32 (out, (uint32_t) fr.pts);
  put_u32 (out, (uint32_t) (fr.pts >> 32));
  put_u32 (out, (uint32_t) fr.damage.size ());
  for (const auto &r : fr.damage) {
    put_u32 (out, (uint32_t) r.x);
    put_u32 (out, (uint32_t) r.y);
    put_u32 (out, (uint32_t) r.w);
    put_u32 (out, (uint32_t) r.h);
  }
  put_u32 (out, (uint32_t) fr.message.size ());
  out.insert (out.end (), fr.message.begin (), fr.message.end ());
}

}                               /* namespace recording */
