/* WayRay tile codec: finding scrolls and moved windows between two frames
 * (the encoder codes them as copies, the classifier does not count them
 * as video). See wayraytilecodec.h.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wayraytilecodec.h"
#include "wayraytilepixels.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <unordered_map>
#include <vector>

namespace wayray {
namespace tiles {

/* ---------------------------------------------------------------------- */
/* Scroll detection                                                        */

static bool
row_uniform (const uint8_t *p, int w)
{
  uint32_t c = load_px (p);
  for (int x = 1; x < w; x++)
    if (load_px (p + 4 * x) != c)
      return false;
  return true;
}

bool
changed_box (const ConstSurface &a, const ConstSurface &b, Rect &r)
{
  int x0 = r.x + r.w, x1 = r.x - 1, y0 = -1, y1 = -1;
  for (int y = r.y; y < r.y + r.h; y++) {
    const uint8_t *pa = a.data + (size_t) y * a.stride + (size_t) r.x * 4;
    const uint8_t *pb = b.data + (size_t) y * b.stride + (size_t) r.x * 4;
    if (memcmp (pa, pb, (size_t) r.w * 4) == 0)
      continue;
    if (y0 < 0)
      y0 = y;
    y1 = y;
    int l = 0, h = r.w - 1;
    while (load_px (pa + 4 * l) == load_px (pb + 4 * l))
      l++;
    while (load_px (pa + 4 * h) == load_px (pb + 4 * h))
      h--;
    x0 = std::min (x0, r.x + l);
    x1 = std::max (x1, r.x + h);
  }
  if (y0 < 0)
    return false;
  r = { x0, y0, x1 - x0 + 1, y1 - y0 + 1 };
  return true;
}

void
merge_touching (std::vector<Rect> &rects)
{
  bool merged = true;
  while (merged) {
    merged = false;
    for (size_t i = 0; i < rects.size () && !merged; i++) {
      for (size_t j = i + 1; j < rects.size (); j++) {
        Rect &a = rects[i], &b = rects[j];
        if (a.x > b.x + b.w || b.x > a.x + a.w || a.y > b.y + b.h || b.y > a.y + a.h)
          continue;
        int x0 = std::min (a.x, b.x), y0 = std::min (a.y, b.y);
        int x1 = std::max (a.x + a.w, b.x + b.w), y1 = std::max (a.y + a.h, b.y + b.h);
        a = { x0, y0, x1 - x0, y1 - y0 };
        rects.erase (rects.begin () + j);
        merged = true;
        break;
      }
    }
  }
}

/* A cheap signature of a row: a sample of its pixels. Equal rows have
 * equal signatures; a false match only costs a useless copy, which the
 * residue then corrects. */
static uint64_t
row_signature (const uint8_t *p, int w)
{
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t) w;
  int step = w > 256 ? 8 : w > 64 ? 3 : 1;
  for (int x = 0; x < w; x += step) {
    h = (h ^ load_px (p + 4 * x)) * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
  }
  return h;
}

int
detect_vertical_shift (const ConstSurface &prev, const ConstSurface &cur, const Rect &r)
{
  if (r.h < 32 || r.w < 16)
    return 0;
  const int n = r.h;
  std::vector<uint64_t> hp (n), hc (n);
  std::vector<uint8_t> uni (n);
  for (int i = 0; i < n; i++) {
    const uint8_t *pp = prev.data + (size_t) (r.y + i) * prev.stride + (size_t) r.x * 4;
    const uint8_t *pc = cur.data + (size_t) (r.y + i) * cur.stride + (size_t) r.x * 4;
    hp[i] = row_signature (pp, r.w);
    hc[i] = row_signature (pc, r.w);
    uni[i] = row_uniform (pc, r.w);
  }
  /* Candidate shifts from distinctive (non-uniform) rows; a row signature
   * that occurs several times in the previous frame votes for each
   * occurrence (at most 4) so repeated lines do not hide the real shift. */
  std::vector<std::pair<uint64_t, int>> where (n);
  for (int i = 0; i < n; i++)
    where[i] = { hp[i], i };
  std::sort (where.begin (), where.end ());
  std::vector<int> votes (2 * n + 1, 0);
  int distinctive = 0;
  for (int i = 0; i < n; i++) {
    if (uni[i] || hc[i] == hp[i])
      continue;
    distinctive++;
    auto it = std::lower_bound (where.begin (), where.end (), std::make_pair (hc[i], INT_MIN));
    for (int k = 0; k < 4 && it != where.end () && it->first == hc[i]; k++, ++it)
      votes[it->second - i + n]++;
  }
  int best = 0, best_votes = 0;
  for (int d = -n + 1; d < n; d++) {
    if (d != 0 && votes[d + n] > best_votes) {
      best_votes = votes[d + n];
      best = d;
    }
  }
  if (best == 0 || best_votes < 8 || best_votes * 4 < distinctive)
    return 0;
  /* Worth it only if the shift explains clearly more distinctive rows than
   * no shift does (uniform rows match anywhere and prove nothing). */
  int shifted = 0, in_place = 0;
  for (int i = 0; i < n; i++) {
    if (uni[i])
      continue;
    int j = i + best;
    if (j >= 0 && j < n && hc[i] == hp[j])
      shifted++;
    if (hc[i] == hp[i])
      in_place++;
  }
  if (shifted < 8 || shifted <= in_place + in_place / 2)
    return 0;
  return best;
}

/* Where did a moved block (a dragged window) come from? Probes: small
 * distinctive blocks of @cur inside @r; each is searched in @prev inside
 * @r with a rolling hash of its first row and verified in full. The offset
 * most probes agree on wins. cur (x, y) == prev (x + ox, y + oy). */
static bool
find_2d_offset (const ConstSurface &prev, const ConstSurface &cur, const Rect &r, int &ox,
    int &oy)
{
  constexpr int PW = 16, PH = 8;
  if (r.w < 4 * PW || r.h < 4 * PH)
    return false;
  struct Probe {
    int x, y;
    uint64_t h;
  };
  std::vector<Probe> probes;
  constexpr uint64_t B = 0x100000001b3ull;
  uint64_t b_pow = 1;           /* B^(PW-1) */
  for (int i = 1; i < PW; i++)
    b_pow *= B;
  auto row_hash = [&] (const uint8_t *p) {
    uint64_t h = 0;
    for (int i = 0; i < PW; i++)
      h = h * B + load_px (p + 4 * i);
    return h;
  };
  for (int j = 1; j <= 3 && probes.size () < 6; j++) {
    for (int i = 1; i <= 4 && probes.size () < 6; i++) {
      int x = r.x + (r.w - PW) * i / 5, y = r.y + (r.h - PH) * j / 4;
      const uint8_t *pc = cur.data + (size_t) y * cur.stride + (size_t) x * 4;
      const uint8_t *pp = prev.data + (size_t) y * prev.stride + (size_t) x * 4;
      /* distinctive (at least 3 colours in its first row) and changed */
      int colours = 1;
      for (int k = 1; k < PW && colours < 3; k++)
        if (load_px (pc + 4 * k) != load_px (pc) && load_px (pc + 4 * k) != load_px (pc + 4 * (k - 1)))
          colours++;
      if (colours < 3 || rows_equal (pc, cur.stride, pp, prev.stride, PW, PH))
        continue;
      probes.push_back ({ x, y, row_hash (pc) });
    }
  }
  if (probes.size () < 2)
    return false;
  /* Each probe is looked for within kMoveRange pixels of its place (a
   * window moves that little between two frames); longer vertical moves
   * are scrolls, found by their rows. */
  constexpr int kMoveRange = 128;
  std::vector<std::pair<std::pair<int, int>, int>> votes;
  for (const Probe &pr : probes) {
    int sx0 = std::max (r.x, pr.x - kMoveRange), sx1 = std::min (r.x + r.w - PW, pr.x + kMoveRange);
    int sy0 = std::max (r.y, pr.y - kMoveRange), sy1 = std::min (r.y + r.h - PH, pr.y + kMoveRange);
    for (int y = sy0; y <= sy1; y++) {
      const uint8_t *row = prev.data + (size_t) y * prev.stride;
      uint64_t h = row_hash (row + (size_t) sx0 * 4);
      for (int x = sx0; x <= sx1; x++) {
        if (x > sx0)
          h = (h - load_px (row + 4 * (size_t) (x - 1)) * b_pow) * B +
              load_px (row + 4 * (size_t) (x + PW - 1));
        if (pr.h != h || (x == pr.x && y == pr.y))
          continue;
        if (!rows_equal (cur.data + (size_t) pr.y * cur.stride + (size_t) pr.x * 4, cur.stride,
                row + (size_t) x * 4, prev.stride, PW, PH))
          continue;
        std::pair<int, int> o (x - pr.x, y - pr.y);
        auto it = std::find_if (votes.begin (), votes.end (),[&](const auto &v) {
              return v.first == o;
            });
        if (it == votes.end ()) {
          if (votes.size () < 256)
            votes.push_back ({ o, 1 });
        } else {
          it->second++;
        }
      }
    }
  }
  int best = 0;
  for (const auto &v : votes)
    if (v.second > best) {
      best = v.second;
      ox = v.first.first;
      oy = v.first.second;
    }
  return best >= 2;
}

bool
detect_move (const ConstSurface &prev, const ConstSurface &cur, const Rect &r, Rect &src,
    Rect &dst)
{
  int ox = 0, oy = detect_vertical_shift (prev, cur, r);
  /* Windows that move are smaller than the screen; a change of most of
   * the screen is not searched for one (it would cost a full-frame update
   * a millisecond or two for nothing). */
  bool may_move = (int64_t) r.w * r.h * 2 <= (int64_t) cur.width * cur.height;
  if (oy == 0 && (!may_move || !find_2d_offset (prev, cur, r, ox, oy)))
    return false;
  /* copy what stays inside r: dst = r ∩ (r - o) */
  int x0 = std::max (r.x, r.x - ox), y0 = std::max (r.y, r.y - oy);
  int x1 = std::min (r.x + r.w, r.x + r.w - ox), y1 = std::min (r.y + r.h, r.y + r.h - oy);
  if (x1 - x0 < 8 || y1 - y0 < 8)
    return false;
  dst = { x0, y0, x1 - x0, y1 - y0 };
  src = { x0 + ox, y0 + oy, dst.w, dst.h };
  if (ox == 0)
    return true;                /* a vertical scroll: checked by its votes */
  /* A 2D move must explain most of the pixels that changed (sampled). */
  int changed = 0, explained = 0;
  for (int y = 0; y < dst.h; y += 3) {
    const uint8_t *c = cur.data + (size_t) (dst.y + y) * cur.stride + (size_t) dst.x * 4;
    const uint8_t *s = prev.data + (size_t) (src.y + y) * prev.stride + (size_t) src.x * 4;
    const uint8_t *p = prev.data + (size_t) (dst.y + y) * prev.stride + (size_t) dst.x * 4;
    for (int x = 0; x < dst.w; x += 3) {
      uint32_t v = load_px (c + 4 * x);
      if (v == load_px (p + 4 * x))
        continue;
      changed++;
      explained += v == load_px (s + 4 * x);
    }
  }
  return explained >= 32 && explained * 2 > changed;
}

}                               /* namespace tiles */
}                               /* namespace wayray */
