/* Writes the seed corpus for fuzz_tiledec: short streams made by the real
 * encoder that use every coding (solid, palette, zstd, lz4, deltas, cache
 * references, copies, glyphs with a small and a large glyph cache).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "screengen.h"
#include "wayraytilecodec.h"

#include <cstdio>
#include <string>
#include <sys/stat.h>

using namespace wayray::tiles;
using namespace screengen;

int
main (int argc, char **argv)
{
  if (argc != 3) {
    fprintf (stderr, "usage: %s SEED-DIR STAMP\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  mkdir (dir.c_str (), 0755);
  int n = 0;
  for (int variant = 0; variant < 8; variant++) {
    EncoderSettings set;
    set.tile_size = variant % 2 ? 16 : 32;
    set.cache_slots = variant % 3 == 0 ? 0 : 6;
    set.compressor = variant % 4 >= 2 ? Compressor::LZ4 : Compressor::ZSTD;
    set.glyph_slots = variant % 2 ? 3 : 2048;
    const int W = 48 + 8 * variant, H = 40 + 4 * variant;
    RandomDesktop desk (W, H, 100 + variant);
    Encoder enc;
    enc.configure (W, H, set);
    std::vector<uint8_t> stream;
    for (int i = 0; i < 12; i++) {
      std::vector<wayray::tiles::Rect> damage;
      for (const auto &r : desk.step ())
        damage.push_back ({r.x, r.y, r.w, r.h});
      ConstSurface s = {desk.screen.px.data (), desk.screen.stride (), W, H};
      std::vector<uint8_t> msg;
      if (!enc.encode (s, i == 0 ? nullptr : damage.data (), damage.size (), nullptr, 0, msg,
              nullptr))
        continue;
      uint32_t len = (uint32_t) msg.size ();
      const uint8_t *l = (const uint8_t *) &len;
      stream.insert (stream.end (), l, l + 4);
      stream.insert (stream.end (), msg.begin (), msg.end ());
    }
    std::string path = dir + "/seed-" + std::to_string (n++);
    FILE *f = fopen (path.c_str (), "wb");
    if (!f || fwrite (stream.data (), 1, stream.size (), f) != stream.size ())
      return 1;
    fclose (f);
  }
  FILE *stamp = fopen (argv[2], "w");
  if (!stamp)
    return 1;
  fprintf (stamp, "%d seeds\n", n);
  fclose (stamp);
  return 0;
}
