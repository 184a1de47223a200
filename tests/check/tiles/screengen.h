/* Synthetic desktop pictures for the tile path's tests and benchmarks:
 * BGRx frames with text-like glyphs, solid areas, noise, scrolls and
 * repeated content, plus the damage each change causes. Deterministic for
 * a given seed.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace screengen {

struct Rect {
  int x, y, w, h;
};

/* splitmix64: small, fast and the same everywhere. */
struct Rng {
  uint64_t s;
  explicit Rng (uint64_t seed) : s (seed) {}
  uint64_t next ()
  {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  int range (int lo, int hi)    /* [lo, hi] */
  {
    return lo + (int) (next () % (uint64_t) (hi - lo + 1));
  }
  bool chance (int percent)
  {
    return range (0, 99) < percent;
  }
};

inline uint32_t
bgrx (uint8_t r, uint8_t g, uint8_t b)
{
  return (uint32_t) b | ((uint32_t) g << 8) | ((uint32_t) r << 16) | 0xff000000u;
}

constexpr int kCellW = 8, kCellH = 16;

struct Screen {
  int w, h;
  std::vector<uint8_t> px;
  Screen (int width, int height) : w (width), h (height), px ((size_t) width * height * 4, 0)
  {
  }
  size_t stride () const
  {
    return (size_t) w * 4;
  }
  uint8_t *at (int x, int y)
  {
    return px.data () + ((size_t) y * w + x) * 4;
  }
  Rect clip (Rect r) const
  {
    int x0 = std::max (r.x, 0), y0 = std::max (r.y, 0);
    int x1 = std::min (r.x + r.w, w), y1 = std::min (r.y + r.h, h);
    if (x1 <= x0 || y1 <= y0)
      return {0, 0, 0, 0};
    return {x0, y0, x1 - x0, y1 - y0};
  }
  void fill (Rect r, uint32_t c)
  {
    r = clip (r);
    for (int y = 0; y < r.h; y++)
      for (int x = 0; x < r.w; x++)
        memcpy (at (r.x + x, r.y + y), &c, 4);
  }
  void noise (Rect r, Rng & rng)
  {
    r = clip (r);
    for (int y = 0; y < r.h; y++)
      for (int x = 0; x < r.w; x++) {
        uint32_t c = (uint32_t) rng.next () | 0xff000000u;
        memcpy (at (r.x + x, r.y + y), &c, 4);
      }
  }
  /* A glyph with anti-aliased edges: a handful of blends of fg and bg. */
  void glyph (int x, int y, unsigned ch, uint32_t fg, uint32_t bg)
  {
    Rng g (ch * 0x9e37u + 17);
    uint8_t shape[kCellH][kCellW] = {};
    if (ch != ' ') {
      for (int s = 0; s < 3; s++) {     /* three strokes */
        int x0 = g.range (1, 6), y0 = g.range (3, 12), len = g.range (3, 9);
        bool vertical = g.chance (50);
        for (int i = 0; i < len; i++) {
          int xx = vertical ? x0 : std::min (x0 + i / 2, 6);
          int yy = vertical ? std::min (y0 - 3 + i, 14) : y0;
          shape[yy][xx] = 3;
          if (xx + 1 < kCellW && shape[yy][xx + 1] == 0)
            shape[yy][xx + 1] = 1;
        }
      }
    }
    for (int yy = 0; yy < kCellH; yy++)
      for (int xx = 0; xx < kCellW; xx++) {
        int px_x = x + xx, px_y = y + yy;
        if (px_x < 0 || px_y < 0 || px_x >= w || px_y >= h)
          continue;
        int a = shape[yy][xx];
        uint32_t c = bg;
        if (a) {
          uint32_t out = 0xff000000u;
          for (int k = 0; k < 3; k++) {
            unsigned f = (fg >> (8 * k)) & 0xff, b = (bg >> (8 * k)) & 0xff;
            out |= ((b * (3 - a) + f * a) / 3) << (8 * k);
          }
          c = out;
        }
        memcpy (at (px_x, px_y), &c, 4);
      }
  }
  /* Moves the rows of @r by @dy (negative: up) and leaves the uncovered
   * rows as they were. */
  void shift_rows (Rect r, int dy)
  {
    r = clip (r);
    if (dy < 0) {
      for (int y = 0; y < r.h + dy; y++)
        memmove (at (r.x, r.y + y), at (r.x, r.y + y - dy), (size_t) r.w * 4);
    } else if (dy > 0) {
      for (int y = r.h - 1; y >= dy; y--)
        memmove (at (r.x, r.y + y), at (r.x, r.y + y - dy), (size_t) r.w * 4);
    }
  }
  void copy_from (const Screen & src, Rect r)
  {
    r = clip (r);
    for (int y = 0; y < r.h; y++)
      memcpy (at (r.x, r.y + y), src.px.data () + ((size_t) (r.y + y) * src.w + r.x) * 4,
          (size_t) r.w * 4);
  }
};

/* A terminal window: a cell grid with a block cursor. */
struct Terminal {
  Rect area;
  uint32_t fg = bgrx (0xdd, 0xdd, 0xdd), bg = bgrx (0x1e, 0x1e, 0x2e);
  int col = 0, row = 0;
  int cols () const
  {
    return area.w / kCellW;
  }
  int rows () const
  {
    return area.h / kCellH;
  }
  Rect cell (int c, int r) const
  {
    return {area.x + c * kCellW, area.y + r * kCellH, kCellW, kCellH};
  }
  void draw_cursor (Screen & s, bool on)
  {
    Rect c = cell (col, row);
    if (on)
      s.fill (c, fg);
    else
      s.glyph (c.x, c.y, ' ', fg, bg);
  }
  /* Types one character; returns the damage. */
  Rect type (Screen & s, unsigned ch)
  {
    Rect c = cell (col, row);
    s.glyph (c.x, c.y, ch, fg, bg);
    col++;
    Rect dmg = c;
    if (col >= cols ()) {
      col = 0;
      row = std::min (row + 1, rows () - 1);
      Rect n = cell (col, row);
      draw_cursor (s, true);
      return {area.x, std::min (c.y, n.y), area.w, std::max (c.y, n.y) + kCellH -
            std::min (c.y, n.y)};
    }
    draw_cursor (s, true);
    dmg.w += kCellW;
    return dmg;
  }
  /* Scrolls the text up by @lines, writing new lines at the bottom. */
  Rect scroll (Screen & s, int lines, Rng & rng)
  {
    s.shift_rows ({area.x, area.y, area.w, rows () * kCellH}, -lines * kCellH);
    for (int l = rows () - lines; l < rows (); l++)
      write_line (s, l, rng);
    return {area.x, area.y, area.w, rows () * kCellH};
  }
  void write_line (Screen & s, int r, Rng & rng)
  {
    s.fill ({area.x, area.y + r * kCellH, area.w, kCellH}, bg);
    int len = rng.range (cols () / 4, cols ());
    for (int c = 0; c < len; c++) {
      unsigned ch = rng.chance (15) ? ' ' : (unsigned) rng.range (33, 126);
      Rect cl = cell (c, r);
      s.glyph (cl.x, cl.y, ch, fg, bg);
    }
  }
  void fill_text (Screen & s, Rng & rng)
  {
    s.fill (area, bg);
    for (int r = 0; r < rows (); r++)
      write_line (s, r, rng);
  }
};

/* Random desktop activity for invariant tests: typing, scrolling, solid
 * fills, noise, switching between two pictures, moved blocks, repeated
 * (animated) regions, over-reported damage and damage without change. */
struct RandomDesktop {
  Screen screen, saved;
  Terminal term;
  Rng rng;
  Rect anim;
  Rect win;                     /* a window that gets dragged around */
  int what = 0;
  /* With bursts, the animated region runs on every frame for 60 frames of
   * each 150 (video, then settling) instead of at random, and the other
   * changes come on one frame in four. */
  bool bursts = false;
  int frame = 0;
  RandomDesktop (int w, int h, uint64_t seed) : screen (w, h), saved (w, h), rng (seed)
  {
    screen.fill ({0, 0, w, h}, bgrx (50, 60, 70));
    term.area = {16, 16, w / 2, h / 2};
    term.fill_text (screen, rng);
    saved = screen;
    anim = {w / 2, h / 3, w / 3, h / 3};
    win = {w / 8, h / 2, std::min (160, w / 2), std::min (96, h / 3)};
    Terminal t;
    t.area = win;
    t.bg = bgrx (240, 240, 230);
    t.fg = bgrx (20, 20, 90);
    t.fill_text (screen, rng);
  }
  /* Drags the window by up to 24 pixels each way over a plain background. */
  Rect drag ()
  {
    const int W = screen.w, H = screen.h;
    Rect to = {std::clamp (win.x + rng.range (-24, 24), 0, W - win.w),
      std::clamp (win.y + rng.range (-24, 24), 0, H - win.h), win.w, win.h
    };
    Screen content (win.w, win.h);
    for (int y = 0; y < win.h; y++)
      memcpy (content.at (0, y), screen.at (win.x, win.y + y), (size_t) win.w * 4);
    screen.fill (win, bgrx (50, 60, 70));
    for (int y = 0; y < win.h; y++)
      memcpy (screen.at (to.x, to.y + y), content.at (0, y), (size_t) win.w * 4);
    int x0 = std::min (win.x, to.x), y0 = std::min (win.y, to.y);
    int x1 = std::max (win.x + win.w, to.x + to.w), y1 = std::max (win.y + win.h, to.y + to.h);
    win = to;
    return {x0, y0, x1 - x0, y1 - y0};
  }
  /* Changes the picture; returns the damage to report. */
  std::vector<Rect> step ()
  {
    const int W = screen.w, H = screen.h;
    std::vector<Rect> damage;
    Rect r = {rng.range (-8, W - 1), rng.range (-8, H - 1), rng.range (1, W / 2),
      rng.range (1, H / 2)
    };
    what = rng.range (0, 12);
    frame++;
    if (bursts) {
      if (frame % 150 < 60) {
        screen.noise (anim, rng);
        damage.push_back (anim);
      }
      if (what == 9 || what == 10)
        what = 0;
      if (frame % 4 != 0)
        return damage;
    }
    switch (what) {
      case 0:
        damage.push_back (term.type (screen, rng.range (33, 126)));
        break;
      case 1:
        damage.push_back (term.scroll (screen, rng.range (1, 3), rng));
        break;
      case 2:
        screen.fill (r, bgrx (rng.range (0, 3) * 80, 0, 200));
        damage.push_back (r);
        break;
      case 3:
        r.w = std::min (r.w, 40);
        r.h = std::min (r.h, 40);
        screen.noise (r, rng);
        damage.push_back (r);
        break;
      case 4:                  /* switch to the other picture */
        std::swap (saved.px, screen.px);
        damage.push_back ({0, 0, W, H});
        break;
      case 5:                  /* vertical move of a block */
        screen.shift_rows (r, rng.range (-20, 20));
        damage.push_back (r);
        break;
      case 6:                  /* over-reported damage */
        damage.push_back ({0, 0, W, H});
        break;
      case 7:                  /* scattered glyphs */
        for (int k = 0; k < 5; k++) {
          int x = rng.range (0, W - 8), y = rng.range (0, H - 16);
          screen.glyph (x, y, rng.range (33, 126), bgrx (0, 0, 0), bgrx (255, 255, 255));
          damage.push_back ({x, y, 8, 16});
        }
        break;
      case 8:                  /* damage without change */
        damage.push_back (r);
        break;
      case 9:
      case 10:                 /* the same region animating */
        screen.noise (anim, rng);
        damage.push_back (anim);
        break;
      case 12:
        damage.push_back (drag ());
        break;
      default:
        screen.glyph (r.x, r.y, rng.range (33, 126), bgrx (200, 0, 0), bgrx (0, 0, 0));
        damage.push_back ({r.x, r.y, 8, 16});
        break;
    }
    return damage;
  }
};

}                               /* namespace screengen */
