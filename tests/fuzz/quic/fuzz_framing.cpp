/* libFuzzer target: the transport framing parser and the conversion of what
 * it yields (caps strings, serialized events) into GStreamer objects — all
 * of it input from the network.
 *
 * First byte: chunk size for feeding (1..128), so that every split of the
 * stream is exercised; the rest is the stream (preamble, frames).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "fuzz_common.h"

#include <cstdint>

extern "C" int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init (argc, argv);
  return 0;
}

extern "C" int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  if (size < 1)
    return 0;
  size_t chunk = (data[0] & 0x7f) + 1;
  data++;
  size--;
  wrq::Parser parser;
  std::vector<wrq::Frame> frames;
  for (size_t off = 0; off < size; off += chunk) {
    if (!parser.feed (data + off, chunk < size - off ? chunk : size - off, frames)) {
      /* An error must be explained. */
      if (parser.error ().empty ())
        __builtin_trap ();
      break;
    }
  }
  convert_frames (frames);
  return 0;
}
