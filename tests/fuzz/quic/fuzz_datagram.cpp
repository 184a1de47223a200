/* libFuzzer target: audio datagrams (decode_datagram), input from the
 * network. What is accepted must encode back to the same bytes; what is
 * refused must say why.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "fuzz_common.h"

#include <cstdint>
#include <cstring>

extern "C" int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init (argc, argv);
  return 0;
}

extern "C" int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  guint64 id = 0;
  wrq::Frame f;
  std::string error;
  if (!wrq::decode_datagram (data, size, id, f, error)) {
    if (error.empty ())
      __builtin_trap ();
    return 0;
  }
  if (f.type != wrq::FrameType::Buffer || !f.buffer || f.wire_size != size)
    __builtin_trap ();
  std::vector<guint8> again;
  wrq::encode_datagram (again, id, f.buffer);
  if (again.size () != size || memcmp (again.data (), data, size) != 0)
    __builtin_trap ();
  return 0;
}
