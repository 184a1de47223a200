/* WayRay tile codec: the application/x-wayray-tiles wire format, its
 * encoder and its validating decoder. Plain C++ without GStreamer so the
 * elements, the fuzz target and the benchmarks share one implementation.
 * The format is specified in docs/protocol.md.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace wayray {
namespace tiles {

constexpr uint8_t kMagic[4] = { 'W', 'R', 'T', 'S' };
/* Version 2 added the glyph cache (header field glyph_slots) and the
 * GLYPHS operation. Version 3 gives only RESET messages the whole header;
 * the others carry magic, version, flags, seq and n_ops (14 bytes), the
 * stream's parameters being those of its last RESET. Decoders still accept
 * version 1 and 2 messages. */
constexpr uint8_t kVersion = 3;
constexpr size_t kHeaderSizeShort = 14;
constexpr size_t kHeaderSizeV1 = 24;
constexpr size_t kHeaderSize = 28;
constexpr uint8_t kFlagReset = 0x01;
constexpr unsigned kMinTileSize = 16;
constexpr unsigned kMaxTileSize = 256;
constexpr unsigned kMaxDimension = 16384;
/* 2^25 pixels (a 128 MiB framebuffer): 7680x4320 fits. */
constexpr uint64_t kMaxPixels = 1ull << 25;
constexpr uint32_t kMaxCacheSlots = 65536;
constexpr uint64_t kMaxCacheBytes = 256ull << 20;
constexpr uint32_t kMaxOps = 1u << 20;
constexpr uint32_t kMaxGlyphSlots = 4096;
constexpr unsigned kMaxGlyphSide = 64;

enum OpType : uint8_t {
  OP_SOLID = 1,
  OP_CACHE_REF = 2,
  OP_PALETTE = 3,
  OP_ZSTD = 4,
  OP_LZ4 = 5,
  OP_DELTA_ZSTD = 6,
  OP_DELTA_LZ4 = 7,
  OP_RAW = 8,
  OP_COPY = 9,
  OP_ZSTD_ABOVE = 10,
  OP_LZ4_ABOVE = 11,
  OP_ZSTD_PREV = 12,
  OP_LZ4_PREV = 13,
  OP_GLYPHS = 14,
};
constexpr int kNumOpTypes = 15;
const char *op_name (int type);

struct Rect {
  int x, y, w, h;
};

/* A block that moved: @src in the previous picture is @dst now (same size). */
struct Move {
  Rect src, dst;
};

/* A BGRx picture: 4 bytes per pixel, rows @stride bytes apart. */
struct Surface {
  uint8_t *data;
  size_t stride;
  int width, height;
};

struct ConstSurface {
  const uint8_t *data;
  size_t stride;
  int width, height;
};

struct Header {
  uint8_t version;
  uint8_t flags;
  uint16_t tile_size;
  uint16_t width, height;
  uint32_t cache_slots;
  uint32_t seq;
  uint32_t n_ops;
  uint32_t glyph_slots;         /* 0 in version 1 */
  size_t size;                  /* of the header: 14, 24 or 28 bytes */
  /* A version 3 message other than RESET: tile_size, width, height,
   * cache_slots and glyph_slots are 0 here, the stream's are those of its
   * last RESET. */
  bool short_form;
};

/* Parses and validates a message header; false with @error set when the
 * header is malformed. A short (version 3, not RESET) header says nothing of
 * the stream's parameters: see Header::short_form. */
bool parse_header (const uint8_t * data, size_t size, Header & header, std::string & error);

/* The rectangle of tile (@tx, @ty) clipped to the frame. */
Rect tile_rect (int tx, int ty, int tile_size, int width, int height);

enum class Compressor { ZSTD, LZ4 };

struct EncoderSettings {
  unsigned tile_size = 64;
  unsigned cache_slots = 2048;
  Compressor compressor = Compressor::ZSTD;
  int zstd_level = 1;
  /* Threads for large updates; 0 picks the number of cores (at most 4). */
  unsigned threads = 0;
  /* Updates with at least this many tiles to compress use the threads. */
  unsigned parallel_threshold = 16;
  bool scroll_detection = true;
  /* Glyph cache slots; 0 turns glyph coding off. */
  unsigned glyph_slots = 2048;
};

struct EncodeStats {
  uint64_t ops[kNumOpTypes] = {};
  uint64_t tiles_unchanged = 0;
  uint64_t tiles_by_glyphs = 0;   /* changed tiles a GLYPHS operation completed */
  uint64_t bytes = 0;
};

/* Checks settings; false with @error when they cannot be used. */
bool validate_settings (const EncoderSettings & settings, std::string & error);

class Encoder {
public:
  Encoder ();
  ~Encoder ();
  Encoder (const Encoder &) = delete;
  Encoder & operator= (const Encoder &) = delete;

  /* (Re)starts the stream: the next message resets the client. Settings
   * must have passed validate_settings(). */
  void configure (int width, int height, const EncoderSettings & settings);
  /* The next message resets the client and carries every tile. */
  void request_reset ();
  bool configured () const;

  /* Encodes the changes of @frame within @damage (n_damage == 0 with
   * damage == nullptr means the whole frame). @lossy lists regions the
   * client shows from another (lossy) path: they are never used as a
   * reference and are resent in full when damaged next. Appends a message
   * to @out and returns true, or returns false when nothing changed. */
  bool encode (const ConstSurface & frame, const Rect * damage, size_t n_damage,
      const Rect * lossy, size_t n_lossy, std::vector<uint8_t> & out, EncodeStats * stats);

  /* Moves found elsewhere (the classifier) for the next encode (): where
   * one lies in a changed group, the encoder takes it instead of searching
   * that group itself. Moves that do not fit the frame are ignored; a
   * wrong one only costs a copy that the group's tiles then correct. */
  void hint_moves (std::vector<Move> moves);

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/* The work one message may cause in a decoder: the rectangles its
 * operations write (copies, tiles, glyph rectangles) add up to at most
 * kWorkFrames frames. Glyphs draw at most twice their rectangle besides its
 * background, so no message writes more than 3 * kWorkFrames frames of
 * pixels, however few bytes it has. What the encoder makes stays far below
 * (each tile once, plus moves and glyph regions). */
constexpr uint64_t kWorkFrames = 4;
inline uint64_t
work_budget (int width, int height)
{
  return kWorkFrames * (uint64_t) width * (uint64_t) height;
}

class Decoder {
public:
  Decoder ();
  ~Decoder ();
  Decoder (const Decoder &) = delete;
  Decoder & operator= (const Decoder &) = delete;

  /* Applies one message to @fb, which must be header.width x header.height.
   * @damage receives the rectangles written. On a malformed message returns
   * false with @error naming the fault; @fb may then be partly updated and
   * the stream must not be continued without a reset message. */
  bool decode (const uint8_t * data, size_t size, const Surface & fb,
      std::vector<Rect> & damage, std::string & error);
  /* Forgets the stream: the next message must be a reset. */
  void reset ();

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/* Finds a vertical shift dy such that rows of @cur inside @r equal rows of
 * @prev moved by dy (cur row y == prev row y + dy), for scrolls and window
 * moves. Returns 0 when no shift explains clearly more rows than no shift. */
int detect_vertical_shift (const ConstSurface & prev, const ConstSurface & cur, const Rect & r);

/* Finds a move inside @r from @prev to @cur: a vertical scroll, or a 2D
 * move (a dragged window) found by searching distinctive blocks. On
 * success the copy @src -> @dst (both inside @r) reproduces it. */
bool detect_move (const ConstSurface & prev, const ConstSurface & cur, const Rect & r,
    Rect & src, Rect & dst);

/* Shrinks @r to the bounding box of the pixels that differ between @a and
 * @b; false when none does. */
bool changed_box (const ConstSurface & a, const ConstSurface & b, Rect & r);

/* Replaces rectangles that overlap or touch by their bounding box, until
 * none do. */
void merge_touching (std::vector<Rect> & rects);

uint64_t hash_rows (const uint8_t * data, size_t stride, int row_bytes, int rows);

}                               /* namespace tiles */
}                               /* namespace wayray */
