/* WayRay transport framing: what travels inside one QUIC (or TCP fallback)
 * stream. The byte layout is specified in docs/transport.md; this file is
 * its only implementation (encoder and incremental parser).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <string>
#include <vector>

namespace wrq {

/* Framing version carried in every stream preamble. */
constexpr guint8 kFramingVersion = 2;

/* What a stream carries; also decides its send priority. */
enum class Purpose : guint8 {
  Control = 0,  /* upstream events of the whole connection (the input stream) */
  Display = 1,
  Video = 2,
  Audio = 3,
  Cursor = 4,
  Input = 5,
  Usb = 6,
  Bulk = 7,
};
constexpr guint8 kPurposeMax = 7;

/* Lower is more urgent: input > cursor > audio > display/video > bulk. */
int purpose_priority (Purpose p);
const char *purpose_name (Purpose p);
/* The purpose a pad name stands for: its leading word (display, video_1 ->
 * video, ...); names that match none are bulk. */
Purpose purpose_from_pad_name (const std::string & name);
/* Pad names on the wire: 1..kMaxNameLen of [A-Za-z0-9_-]. */
bool valid_stream_name (const std::string & name);
constexpr size_t kMaxNameLen = 64;

enum class FrameType : guint8 {
  Caps = 1,
  Segment = 2,
  Buffer = 3,
  Event = 4,          /* serialized downstream event (custom, EOS, gap) */
  UpstreamEvent = 5,  /* control stream only: event for a named sink pad */
  Navigation = 6,     /* control stream only: a key, pointer or scroll event, in binary */
};

/* What a navigation frame carries (docs/transport.md). */
enum class NavigationKind : guint8 {
  KeyPress = 1,
  KeyRelease = 2,
  MouseMove = 3,
  ButtonPress = 4,
  ButtonRelease = 5,
  Scroll = 6,
};
constexpr guint8 kNavigationKindMax = 6;
constexpr size_t kMaxKeyNameLen = 64;

/* Largest payload accepted per frame type (the parser's bounds). */
constexpr guint32 kMaxCapsLen = 64 * 1024;
constexpr guint32 kMaxEventLen = 1024 * 1024;
constexpr guint32 kMaxBufferLen = 64 * 1024 * 1024;
constexpr guint32 kSegmentLen = 80;
/* A buffer frame's header: which of pts, dts and duration follow (u8, bits
 * 0..2), the wire flags (u8), then each present one as u64. */
constexpr guint32 kBufferHeaderMin = 2;
constexpr guint32 kBufferHeaderMax = 2 + 3 * 8;
constexpr guint8 kBufferHasPts = 1 << 0;
constexpr guint8 kBufferHasDts = 1 << 1;
constexpr guint8 kBufferHasDuration = 1 << 2;
constexpr size_t kPreambleFixedLen = 11;
constexpr size_t kFrameHeaderLen = 5;

/* Buffer flags on the wire (a stable subset of GstBufferFlags). */
enum WireBufferFlags : guint32 {
  WIRE_FLAG_DELTA_UNIT = 1 << 0,
  WIRE_FLAG_DISCONT = 1 << 1,
  WIRE_FLAG_HEADER = 1 << 2,
  WIRE_FLAG_GAP = 1 << 3,
  WIRE_FLAG_DROPPABLE = 1 << 4,
  WIRE_FLAG_MARKER = 1 << 5,
  WIRE_FLAG_LIVE = 1 << 6,
};
guint32 wire_flags_from_buffer (GstBuffer * buf);
void wire_flags_to_buffer (guint32 wire, GstBuffer * buf);

struct Preamble {
  Purpose purpose = Purpose::Bulk;
  bool gop_stream = false;   /* one stream per group of pictures */
  guint32 gop = 0;           /* sequence number of that group */
  std::string name;
};

/* Encoders append to @out. */
void encode_preamble (std::vector<guint8> & out, const Preamble & p);
void encode_caps (std::vector<guint8> & out, GstCaps * caps);
void encode_segment (std::vector<guint8> & out, const GstSegment * seg);
/* Header only; the buffer's bytes follow (encode_buffer_payload). */
void encode_buffer_header (std::vector<guint8> & out, GstBuffer * buf);
void encode_buffer (std::vector<guint8> & out, GstBuffer * buf);
/* FALSE when the event cannot be serialized (the caller drops it). */
bool encode_event (std::vector<guint8> & out, GstEvent * ev);
bool encode_upstream_event (std::vector<guint8> & out, const std::string & target, GstEvent * ev);

/* One parsed frame. Only the members of its type are set. */
struct Frame {
  FrameType type = FrameType::Caps;
  std::string text;          /* caps string, event structure string */
  guint32 event_type = 0;    /* GstEventType */
  std::string target;        /* upstream event: sink pad name */
  GstSegment segment;        /* segment */
  GstBuffer *buffer = nullptr;  /* buffer: owned */
  size_t wire_size = 0;      /* bytes this frame took on the wire */

  Frame () { gst_segment_init (&segment, GST_FORMAT_UNDEFINED); }
  Frame (const Frame &) = delete;
  Frame & operator= (const Frame &) = delete;
  Frame (Frame && o) noexcept { *this = std::move (o); }
  Frame & operator= (Frame && o) noexcept;
  ~Frame () { gst_clear_buffer (&buffer); }

  /* Turn into GStreamer objects; nullptr + @error on bad content. */
  GstCaps *to_caps (std::string & error) const;
  GstEvent *to_event (std::string & error) const;
};

/* Incremental parser of one stream: feed bytes as they arrive, in order.
 * It first expects the preamble, then frames. Errors are sticky and name
 * the problem (for the error message and the stream reset). */
class Parser {
public:
  explicit Parser (bool control_stream_allowed = true)
      : control_allowed_ (control_stream_allowed) {}
  ~Parser ();

  /* Consumes all of @data; parsed frames are appended to @frames. Returns
   * FALSE on malformed input (see error()). */
  bool feed (const guint8 * data, size_t len, std::vector<Frame> & frames);

  bool has_preamble () const { return have_preamble_; }
  const Preamble & preamble () const { return preamble_; }
  const std::string & error () const { return error_; }
  /* Bytes held for an incomplete frame. */
  size_t buffered () const { return acc_.size () + pending_filled_; }

private:
  bool set_error (std::string msg);
  bool parse_preamble ();
  bool parse_frame_header ();
  bool finish_frame (std::vector<Frame> & frames);
  bool emit_buffer (std::vector<Frame> & frames);

  bool control_allowed_;
  bool have_preamble_ = false;
  Preamble preamble_;
  std::string error_;
  std::vector<guint8> acc_;      /* header bytes / small payloads */
  /* The frame in progress (after its 5-byte header). */
  bool in_frame_ = false;
  FrameType cur_type_ = FrameType::Caps;
  guint32 cur_len_ = 0;
  /* Buffer frames: payload data goes straight into GstMemory chunks of the
   * GstBuffer, allocated as data arrives (4 MiB first, then doubling), so
   * memory follows what was received, not what a header claims. */
  GstBuffer *pending_buffer_ = nullptr;
  GstMemory *chunk_ = nullptr;
  GstMapInfo chunk_map_ {};
  size_t chunk_filled_ = 0;
  size_t pending_filled_ = 0;     /* payload bytes received so far */
  bool next_chunk ();
  guint8 buffer_header_[kBufferHeaderMax] {};
  guint32 buffer_header_len_ = kBufferHeaderMin;   /* of the buffer frame in progress */
};

/* Datagrams (QUIC DATAGRAM frames, RFC 9221): a buffer of an audio stream
 * sent outside the stream, so that a lost packet never holds back the
 * ones after it (docs/transport.md, "Datagrams"). u8 kDatagramVersion, u64
 * the id of the stream the buffer belongs to (its caps and segment travel
 * on it), u8 which times follow and u8 the wire flags as in a buffer
 * frame, the times, then the payload. */
constexpr guint8 kDatagramVersion = 1;
constexpr size_t kDatagramHeaderMin = 1 + 8 + kBufferHeaderMin;
/* The largest datagram frame either end takes. */
constexpr size_t kMaxDatagramFrame = 1200;
void encode_datagram (std::vector<guint8> & out, guint64 stream_id, GstBuffer * buf);
/* FALSE with @error for a malformed datagram; else @stream_id and a Buffer
 * @frame (owning its buffer). */
bool decode_datagram (const guint8 * data, size_t len, guint64 & stream_id, Frame & frame, std::string & error);

/* TCP + TLS fallback: streams multiplexed as records (docs/transport.md):
 * u32 stream, u8 flags, u32 length, then length bytes of the stream. */
constexpr size_t kTcpRecordHeaderLen = 9;
constexpr guint32 kTcpMaxRecordLen = 16 * 1024;
constexpr guint8 kTcpFin = 1;
constexpr guint8 kTcpReset = 2;
constexpr guint8 kTcpKeepAlive = 4;
constexpr guint32 kTcpKeepAliveStream = 0xffffffffu;

struct TcpRecord {
  guint32 stream = 0;
  guint8 flags = 0;
  const guint8 *data = nullptr;
  guint32 len = 0;
};

void encode_tcp_record_header (guint8 * out, guint32 stream, guint8 flags, guint32 len);
/* Looks at the start of @data: returns the size of a complete record (and
 * fills @rec), 0 when more bytes are needed, -1 for a malformed header
 * (@error names it). */
gssize parse_tcp_record (const guint8 * data, size_t avail, TcpRecord & rec, std::string & error);

}  // namespace wrq
