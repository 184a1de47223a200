/* libFuzzer target: the TCP fallback's record demultiplexer and, behind it,
 * one framing parser per stream — everything a TCP peer can send.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "fuzz_common.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>

extern "C" int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init (argc, argv);
  return 0;
}

extern "C" int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  std::map<guint32, std::unique_ptr<wrq::Parser>> streams;
  std::vector<wrq::Frame> frames;
  size_t off = 0;
  for (;;) {
    wrq::TcpRecord rec;
    std::string error;
    gssize n = wrq::parse_tcp_record (data + off, size - off, rec, error);
    if (n < 0 && error.empty ())
      __builtin_trap ();
    if (n <= 0)
      break;
    if (rec.len > wrq::kTcpMaxRecordLen || (size_t) n != wrq::kTcpRecordHeaderLen + rec.len)
      __builtin_trap ();
    off += (size_t) n;
    if (rec.flags & wrq::kTcpKeepAlive)
      continue;
    auto &p = streams[rec.stream];
    if (!p)
      p.reset (new wrq::Parser ());
    if (rec.flags & wrq::kTcpReset) {
      streams.erase (rec.stream);
      continue;
    }
    if (!p->feed (rec.data, rec.len, frames) && p->error ().empty ())
      __builtin_trap ();
    convert_frames (frames);
    if (rec.flags & wrq::kTcpFin)
      streams.erase (rec.stream);
    if (streams.size () > 256)
      break;
  }
  return 0;
}
