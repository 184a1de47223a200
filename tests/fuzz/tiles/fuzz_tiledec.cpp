/* libFuzzer target for the tile decoder. The input is a sequence of
 * messages, each prefixed by its length (u32 little-endian), fed to one
 * decoder so that later messages meet the state (framebuffer, cache,
 * sequence) earlier ones left. Anything may be rejected; nothing may read
 * or write out of bounds (ASan) or crash.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wayraytilecodec.h"

#include <cstring>
#include <vector>

using namespace wayray::tiles;

extern "C" int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  Decoder dec;
  std::vector<uint8_t> fb;
  int width = 0, height = 0;
  std::vector<Rect> damage;
  std::string error;
  while (size >= 4) {
    uint32_t len;
    memcpy (&len, data, 4);
    data += 4;
    size -= 4;
    if (len > size)
      len = (uint32_t) size;
    Header h;
    if (parse_header (data, len, h, error) && (h.flags & kFlagReset)) {
      /* keep the fuzzer's memory bounded: at most 4 Mpixels */
      if ((uint64_t) h.width * h.height > (4u << 20))
        return 0;
      if (h.width != width || h.height != height) {
        width = h.width;
        height = h.height;
        fb.assign ((size_t) width * height * 4, 0);
      }
    }
    if (width > 0) {
      Surface s = {fb.data (), (size_t) width * 4, width, height};
      damage.clear ();
      bool ok = dec.decode (data, len, s, damage, error);
      if (!ok && error.empty ())
        __builtin_trap ();      /* a rejection must say why */
      /* The work budget: whatever the message, the rectangles written add
       * up to at most kWorkFrames frames (checked before each write). */
      uint64_t area = 0;
      for (const Rect &r : damage)
        area += (uint64_t) r.w * r.h;
      if (area > work_budget (width, height))
        __builtin_trap ();
    }
    data += len;
    size -= len;
  }
  return 0;
}
