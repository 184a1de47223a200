/* Wire framing: what the encoder writes, the parser reads back — in any
 * split of the byte stream — and malformed input is refused with an error
 * naming the problem.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#include "gstquicframing.h"
#include "gstwayraycursor.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

using namespace wrq;

static std::vector<guint8>
sample_stream (GstBuffer ** out_buf)
{
  std::vector<guint8> bytes;
  Preamble pre;
  pre.purpose = Purpose::Video;
  pre.gop_stream = true;
  pre.gop = 7;
  pre.name = "video_main";
  encode_preamble (bytes, pre);

  GstCaps *caps = gst_caps_from_string ("video/x-h264,width=(int)640,height=(int)480,stream-format=byte-stream");
  encode_caps (bytes, caps);
  gst_caps_unref (caps);

  GstSegment seg;
  gst_segment_init (&seg, GST_FORMAT_TIME);
  seg.base = 5 * GST_SECOND;
  seg.start = 2 * GST_SECOND;
  encode_segment (bytes, &seg);

  GstBuffer *buf = gst_buffer_new_allocate (nullptr, 100000, nullptr);
  GstMapInfo map;
  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  for (gsize i = 0; i < map.size; i++)
    map.data[i] = (guint8) (i * 7 + 3);
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_PTS (buf) = 3 * GST_SECOND;
  GST_BUFFER_DTS (buf) = 3 * GST_SECOND - 1;
  GST_BUFFER_DURATION (buf) = 33 * GST_MSECOND;
  GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT);
  GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_HEADER);
  encode_buffer (bytes, buf);
  *out_buf = buf;

  GstBuffer *empty = gst_buffer_new ();
  encode_buffer (bytes, empty);
  gst_buffer_unref (empty);

  GstBuffer *image = gst_buffer_new_allocate (nullptr, 4 * 4 * 4, nullptr);
  gst_buffer_memset (image, 0, 0x5a, 64);
  GstWayrayCursor c = { TRUE, 10, 20, 3, 1, 2, 4, 4, image };
  GstEvent *ev = gst_wayray_cursor_event_new (&c);
  fail_unless (encode_event (bytes, ev));
  gst_event_unref (ev);
  gst_buffer_unref (image);

  ev = gst_event_new_eos ();
  fail_unless (encode_event (bytes, ev));
  gst_event_unref (ev);
  return bytes;
}

static void
check_frames (std::vector<Frame> & frames, GstBuffer * expected)
{
  fail_unless_equals_int (frames.size (), 6);
  std::string err;
  fail_unless (frames[0].type == FrameType::Caps);
  GstCaps *caps = frames[0].to_caps (err);
  fail_unless (caps != nullptr, "%s", err.c_str ());
  GstCaps *want = gst_caps_from_string ("video/x-h264,width=(int)640,height=(int)480,stream-format=byte-stream");
  fail_unless (gst_caps_is_equal (caps, want));
  gst_caps_unref (caps);
  gst_caps_unref (want);

  fail_unless (frames[1].type == FrameType::Segment);
  fail_unless_equals_uint64 (frames[1].segment.base, 5 * GST_SECOND);
  fail_unless_equals_uint64 (frames[1].segment.start, 2 * GST_SECOND);
  fail_unless_equals_int (frames[1].segment.format, GST_FORMAT_TIME);

  fail_unless (frames[2].type == FrameType::Buffer);
  GstBuffer *b = frames[2].buffer;
  fail_unless_equals_uint64 (GST_BUFFER_PTS (b), GST_BUFFER_PTS (expected));
  fail_unless_equals_uint64 (GST_BUFFER_DTS (b), GST_BUFFER_DTS (expected));
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (b), GST_BUFFER_DURATION (expected));
  fail_unless (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DELTA_UNIT));
  fail_unless (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_HEADER));
  fail_if (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DISCONT));
  fail_unless (gst_buffer_memcmp (b, 0, [&] {
        static std::vector<guint8> v;
        v.resize (gst_buffer_get_size (expected));
        gst_buffer_extract (expected, 0, v.data (), v.size ());
        return v.data (); } (), gst_buffer_get_size (expected)) == 0);
  fail_unless_equals_int (gst_buffer_get_size (b), gst_buffer_get_size (expected));

  fail_unless (frames[3].type == FrameType::Buffer);
  fail_unless_equals_int (gst_buffer_get_size (frames[3].buffer), 0);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (frames[3].buffer), GST_CLOCK_TIME_NONE);

  fail_unless (frames[4].type == FrameType::Event);
  GstEvent *ev = frames[4].to_event (err);
  fail_unless (ev != nullptr, "%s", err.c_str ());
  GstWayrayCursor c;
  fail_unless (gst_wayray_cursor_event_parse (ev, &c));
  fail_unless_equals_int (c.x, 10);
  fail_unless_equals_int (c.y, 20);
  fail_unless_equals_int (c.serial, 3);
  fail_unless (c.image != nullptr);
  fail_unless_equals_int (gst_buffer_get_size (c.image), 64);
  guint8 px;
  gst_buffer_extract (c.image, 63, &px, 1);
  fail_unless_equals_int (px, 0x5a);
  gst_buffer_unref (c.image);
  gst_event_unref (ev);

  ev = frames[5].to_event (err);
  fail_unless (ev && GST_EVENT_TYPE (ev) == GST_EVENT_EOS);
  gst_event_unref (ev);
}

GST_START_TEST (test_roundtrip_any_split)
{
  GstBuffer *buf;
  std::vector<guint8> bytes = sample_stream (&buf);
  /* Whole, byte by byte, and in odd-sized pieces. */
  for (size_t piece : { bytes.size (), (size_t) 1, (size_t) 7, (size_t) 1499, (size_t) 65536 }) {
    Parser p;
    std::vector<Frame> frames;
    for (size_t off = 0; off < bytes.size (); off += piece)
      fail_unless (p.feed (bytes.data () + off, MIN (piece, bytes.size () - off), frames), "%s",
          p.error ().c_str ());
    fail_unless (p.has_preamble ());
    fail_unless (p.preamble ().purpose == Purpose::Video);
    fail_unless (p.preamble ().gop_stream);
    fail_unless_equals_int (p.preamble ().gop, 7);
    fail_unless_equals_string (p.preamble ().name.c_str (), "video_main");
    fail_unless_equals_int (p.buffered (), 0);
    check_frames (frames, buf);
  }
  gst_buffer_unref (buf);
}
GST_END_TEST;

static std::vector<guint8> display_preamble ();

/* A buffer frame carries only the times a buffer has: 2 header bytes plus
 * 8 per time, whatever the combination, and each comes back as it was
 * (absent ones as none), also when fed byte by byte. */
GST_START_TEST (test_buffer_header_sizes)
{
  for (int present = 0; present < 8; present++) {
    GstBuffer *buf = gst_buffer_new_memdup ("xyz", 3);
    GST_BUFFER_PTS (buf) = (present & 1) ? 11 * GST_SECOND : GST_CLOCK_TIME_NONE;
    GST_BUFFER_DTS (buf) = (present & 2) ? 0 : GST_CLOCK_TIME_NONE;
    GST_BUFFER_DURATION (buf) = (present & 4) ? 40 * GST_MSECOND : GST_CLOCK_TIME_NONE;
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT);
    std::vector<guint8> b = display_preamble ();
    size_t before = b.size ();
    encode_buffer (b, buf);
    int times = (present & 1) + ((present >> 1) & 1) + ((present >> 2) & 1);
    fail_unless_equals_int (b.size () - before, kFrameHeaderLen + 2 + 8 * times + 3);
    Parser p;
    std::vector<Frame> frames;
    for (size_t off = 0; off < b.size (); off++)
      fail_unless (p.feed (b.data () + off, 1, frames), "%s", p.error ().c_str ());
    fail_unless_equals_int (frames.size (), 1);
    GstBuffer *got = frames[0].buffer;
    fail_unless_equals_uint64 (GST_BUFFER_PTS (got), GST_BUFFER_PTS (buf));
    fail_unless_equals_uint64 (GST_BUFFER_DTS (got), GST_BUFFER_DTS (buf));
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (got), GST_BUFFER_DURATION (buf));
    fail_unless (GST_BUFFER_FLAG_IS_SET (got, GST_BUFFER_FLAG_DELTA_UNIT));
    fail_unless (gst_buffer_memcmp (got, 0, "xyz", 3) == 0);
    fail_unless_equals_int (frames[0].wire_size, b.size () - before);
    gst_buffer_unref (buf);
  }
}
GST_END_TEST;

GST_START_TEST (test_upstream_events)
{
  std::vector<guint8> bytes;
  Preamble pre;
  pre.purpose = Purpose::Control;
  pre.name = "control";
  encode_preamble (bytes, pre);
  GstEvent *nav = gst_navigation_event_new_key_press ("a", GST_NAVIGATION_MODIFIER_SHIFT_MASK);
  fail_unless (encode_upstream_event (bytes, "display", nav));
  gst_event_unref (nav);
  GstEvent *fku = gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 42);
  fail_unless (encode_upstream_event (bytes, "video", fku));
  gst_event_unref (fku);
  /* A downstream-only event does not go upstream. */
  GstEvent *eos = gst_event_new_eos ();
  fail_if (encode_upstream_event (bytes, "video", eos));
  gst_event_unref (eos);

  Parser p;
  std::vector<Frame> frames;
  fail_unless (p.feed (bytes.data (), bytes.size (), frames), "%s", p.error ().c_str ());
  fail_unless_equals_int (frames.size (), 2);
  std::string err;
  fail_unless_equals_string (frames[0].target.c_str (), "display");
  GstEvent *ev = frames[0].to_event (err);
  fail_unless (ev && GST_EVENT_TYPE (ev) == GST_EVENT_NAVIGATION);
  const gchar *key = nullptr;
  fail_unless (gst_navigation_event_parse_key_event (ev, &key));
  fail_unless_equals_string (key, "a");
  gst_event_unref (ev);
  fail_unless_equals_string (frames[1].target.c_str (), "video");
  ev = frames[1].to_event (err);
  fail_unless (ev && gst_video_event_is_force_key_unit (ev));
  gboolean all = FALSE;
  guint count = 0;
  fail_unless (gst_video_event_parse_upstream_force_key_unit (ev, nullptr, &all, &count));
  fail_unless (all);
  fail_unless_equals_int (count, 42);
  gst_event_unref (ev);
}
GST_END_TEST;

static std::string
parse_error (std::vector<guint8> bytes)
{
  Parser p;
  std::vector<Frame> frames;
  fail_if (p.feed (bytes.data (), bytes.size (), frames), "malformed input accepted");
  /* Errors are sticky. */
  guint8 more = 0;
  fail_if (p.feed (&more, 1, frames));
  return p.error ();
}

static std::vector<guint8>
display_preamble ()
{
  std::vector<guint8> b;
  Preamble pre;
  pre.purpose = Purpose::Display;
  pre.name = "display";
  encode_preamble (b, pre);
  return b;
}

GST_START_TEST (test_malformed)
{
  std::vector<guint8> b = display_preamble ();
  b[0] = 'X';
  fail_unless (parse_error (b).find ("bad magic") != std::string::npos);

  b = display_preamble ();
  b[3] = 9;
  fail_unless (parse_error (b).find ("unsupported framing version 9") != std::string::npos);

  b = display_preamble ();
  b[4] = 42;
  fail_unless (parse_error (b).find ("unknown stream purpose 42") != std::string::npos);

  b = display_preamble ();
  b[6] = 0;
  fail_unless (parse_error (b).find ("name length 0") != std::string::npos);

  b = display_preamble ();
  b[kPreambleFixedLen] = '/';
  fail_unless (parse_error (b).find ("characters") != std::string::npos);

  b = display_preamble ();
  b.push_back (99);
  b.insert (b.end (), { 0, 0, 0, 0 });
  fail_unless (parse_error (b).find ("unknown frame type 99") != std::string::npos);

  /* A caps frame longer than its bound. */
  b = display_preamble ();
  b.push_back ((guint8) FrameType::Caps);
  b.insert (b.end (), { 0, 0, 0, 1 });   /* 16 MiB */
  fail_unless (parse_error (b).find ("caps frame length 16777216 outside") != std::string::npos);

  /* A buffer frame larger than 64 MiB + header is refused before any
   * allocation. */
  b = display_preamble ();
  b.push_back ((guint8) FrameType::Buffer);
  b.insert (b.end (), { 0xff, 0xff, 0xff, 0xff });
  fail_unless (parse_error (b).find ("buffer frame length") != std::string::npos);

  /* Segment frames have one exact size. */
  b = display_preamble ();
  b.push_back ((guint8) FrameType::Segment);
  b.insert (b.end (), { 3, 0, 0, 0 });
  fail_unless (parse_error (b).find ("segment frame length 3") != std::string::npos);

  /* Upstream events only on the control stream. */
  b = display_preamble ();
  b.push_back ((guint8) FrameType::UpstreamEvent);
  b.insert (b.end (), { 6, 0, 0, 0 });
  fail_unless (parse_error (b).find ("upstream-event frame on a media stream") != std::string::npos);

  /* Unknown buffer flags. */
  b = display_preamble ();
  GstBuffer *buf = gst_buffer_new ();
  encode_buffer (b, buf);
  gst_buffer_unref (buf);
  b[b.size () - 1] = 0x80;
  fail_unless (parse_error (b).find ("unknown flags") != std::string::npos);

  /* Unknown header fields. */
  b = display_preamble ();
  b.push_back ((guint8) FrameType::Buffer);
  b.insert (b.end (), { 2, 0, 0, 0, 0x08, 0 });
  fail_unless (parse_error (b).find ("unknown header fields 8") != std::string::npos);

  /* A frame shorter than the header its first byte announces. */
  b = display_preamble ();
  b.push_back ((guint8) FrameType::Buffer);
  b.insert (b.end (), { 9, 0, 0, 0, kBufferHasPts | kBufferHasDts, 0, 1, 2, 3, 4, 5, 6, 7 });
  fail_unless (parse_error (b).find ("shorter than its header (18)") != std::string::npos);
}
GST_END_TEST;

/* Keys, pointer and scrolling travel as binary navigation frames and come
 * back as the same events (structures equal); what has no binary form
 * (a touch event, a key name with a space, a button the binary form does
 * not take) travels as text. */
GST_START_TEST (test_navigation_frames)
{
  const GstNavigationModifierType mods = (GstNavigationModifierType) (GST_NAVIGATION_MODIFIER_SHIFT_MASK
      | GST_NAVIGATION_MODIFIER_CONTROL_MASK);
  GstEvent *events[] = {
    gst_navigation_event_new_key_press ("a", mods),
    gst_navigation_event_new_key_release ("ISO_Level3_Shift", (GstNavigationModifierType) 0),
    gst_navigation_event_new_mouse_move (100.5, 200.25, mods),
    gst_navigation_event_new_mouse_button_press (3, 1.0, 2.0, (GstNavigationModifierType) 0),
    gst_navigation_event_new_mouse_button_release (1, 1279.0, 719.0, mods),
    gst_navigation_event_new_mouse_scroll (10.0, 20.0, 0.0, -1.5, (GstNavigationModifierType) 0),
    gst_navigation_event_new_touch_down (1, 5.0, 6.0, 0.5, (GstNavigationModifierType) 0),
    gst_navigation_event_new_key_press ("a b", (GstNavigationModifierType) 0),
    gst_navigation_event_new_mouse_button_press (40, 1.0, 2.0, (GstNavigationModifierType) 0),
  };
  const FrameType want[] = { FrameType::Navigation, FrameType::Navigation, FrameType::Navigation,
    FrameType::Navigation, FrameType::Navigation, FrameType::Navigation, FrameType::UpstreamEvent,
    FrameType::UpstreamEvent, FrameType::UpstreamEvent };
  std::vector<guint8> bytes;
  Preamble pre;
  pre.purpose = Purpose::Control;
  pre.name = "control";
  encode_preamble (bytes, pre);
  size_t key_at = bytes.size ();
  for (GstEvent *e : events)
    fail_unless (encode_upstream_event (bytes, "display", e));
  Parser p;
  std::vector<Frame> frames;
  for (size_t off = 0; off < bytes.size (); off++)
    fail_unless (p.feed (bytes.data () + off, 1, frames), "%s", p.error ().c_str ());
  fail_unless_equals_int (frames.size (), G_N_ELEMENTS (events));
  /* A key press: frame header, target, kind, state, the name. */
  fail_unless_equals_int (frames[0].wire_size, 5 + 1 + 7 + 1 + 4 + 1 + 1);
  fail_unless (bytes[key_at] == (guint8) FrameType::Navigation);
  for (size_t i = 0; i < G_N_ELEMENTS (events); i++) {
    fail_unless (frames[i].type == want[i], "event %u", (guint) i);
    fail_unless_equals_string (frames[i].target.c_str (), "display");
    std::string err;
    GstEvent *got = frames[i].to_event (err);
    fail_unless (got != nullptr, "event %u: %s", (guint) i, err.c_str ());
    fail_unless (gst_structure_is_equal (gst_event_get_structure (got), gst_event_get_structure (events[i])),
        "event %u differs", (guint) i);
    gst_event_unref (got);
    gst_event_unref (events[i]);
  }
}
GST_END_TEST;

/* A navigation frame's body from @kind on (after target "display"). */
static std::string
navigation_error (std::vector<guint8> body)
{
  std::vector<guint8> b;
  Preamble pre;
  pre.purpose = Purpose::Control;
  pre.name = "control";
  encode_preamble (b, pre);
  b.push_back ((guint8) FrameType::Navigation);
  guint32 len = 8 + body.size ();
  b.insert (b.end (), { (guint8) len, (guint8) (len >> 8), 0, 0, 7 });
  b.insert (b.end (), { 'd', 'i', 's', 'p', 'l', 'a', 'y' });
  b.insert (b.end (), body.begin (), body.end ());
  Parser p;
  std::vector<Frame> frames;
  if (!p.feed (b.data (), b.size (), frames))
    return "parser: " + p.error ();
  fail_unless_equals_int (frames.size (), 1);
  std::string err;
  GstEvent *ev = frames[0].to_event (err);
  fail_unless (ev == nullptr, "a malformed navigation frame became an event");
  return err;
}

GST_START_TEST (test_navigation_malformed)
{
  auto f64 = [] (double d, std::vector<guint8> &out) {
    guint64 v;
    memcpy (&v, &d, 8);
    for (int i = 0; i < 8; i++)
      out.push_back ((guint8) (v >> (8 * i)));
  };
  fail_unless (navigation_error ({ 9, 0, 0, 0, 0, 1, 'a' }).find ("unknown kind 9") != std::string::npos);
  fail_unless (navigation_error ({ 1, 0, 0, 0, 0, 5, 'a' }).find ("key name length") != std::string::npos);
  fail_unless (navigation_error ({ 1, 0, 0, 0, 0, 1, 0x01 }).find ("printable") != std::string::npos);
  std::vector<guint8> move = { 3, 0, 0, 0, 0 };
  f64 (1.0, move);
  fail_unless (navigation_error (move).find ("8 bytes of coordinates, 16 expected") != std::string::npos);
  f64 (NAN, move);
  fail_unless (navigation_error (move).find ("not finite") != std::string::npos);
  std::vector<guint8> button = { 4, 0, 0, 0, 0, 0, 0, 0, 0 };
  f64 (1.0, button);
  f64 (2.0, button);
  fail_unless (navigation_error (button).find ("button 0 outside") != std::string::npos);
  /* Longer than any navigation frame: refused by the parser. */
  std::vector<guint8> big (200, 'a');
  fail_unless (navigation_error (big).find ("parser: navigation frame length") != std::string::npos);
}
GST_END_TEST;

GST_START_TEST (test_event_content_errors)
{
  /* Well-framed but meaningless content: refused at conversion. */
  std::vector<guint8> b = display_preamble ();
  b.push_back ((guint8) FrameType::Caps);
  const char *bad = "not caps at all,,,";
  guint32 n = strlen (bad);
  b.insert (b.end (), { (guint8) n, 0, 0, 0 });
  b.insert (b.end (), bad, bad + n);
  b.push_back ((guint8) FrameType::Event);
  b.insert (b.end (), { 4, 0, 0, 0 });
  guint32 t = GST_EVENT_FLUSH_START;
  b.insert (b.end (), { (guint8) t, (guint8) (t >> 8), (guint8) (t >> 16), (guint8) (t >> 24) });
  Parser p;
  std::vector<Frame> frames;
  fail_unless (p.feed (b.data (), b.size (), frames));
  fail_unless_equals_int (frames.size (), 2);
  std::string err;
  fail_unless (frames[0].to_caps (err) == nullptr);
  fail_unless (err.find ("caps frame") != std::string::npos);
  err.clear ();
  fail_unless (frames[1].to_event (err) == nullptr);
  fail_unless (err.find ("may not cross the network") != std::string::npos);
}
GST_END_TEST;

GST_START_TEST (test_purposes)
{
  fail_unless (purpose_from_pad_name ("display") == Purpose::Display);
  fail_unless (purpose_from_pad_name ("video_1") == Purpose::Video);
  fail_unless (purpose_from_pad_name ("video2") == Purpose::Video);
  fail_unless (purpose_from_pad_name ("cursor") == Purpose::Cursor);
  fail_unless (purpose_from_pad_name ("audio-mic") == Purpose::Audio);
  fail_unless (purpose_from_pad_name ("usb") == Purpose::Usb);
  fail_unless (purpose_from_pad_name ("videos") == Purpose::Bulk);
  fail_unless (purpose_from_pad_name ("whatever") == Purpose::Bulk);
  fail_unless (purpose_priority (Purpose::Input) < purpose_priority (Purpose::Cursor));
  fail_unless (purpose_priority (Purpose::Cursor) < purpose_priority (Purpose::Audio));
  fail_unless (purpose_priority (Purpose::Audio) < purpose_priority (Purpose::Display));
  fail_unless (purpose_priority (Purpose::Display) < purpose_priority (Purpose::Video));
  fail_unless (purpose_priority (Purpose::Video) < purpose_priority (Purpose::Bulk));
}
GST_END_TEST;

GST_START_TEST (test_tcp_records)
{
  guint8 buf[64];
  const char payload[] = "hello";
  encode_tcp_record_header (buf, 7, kTcpFin, 5);
  memcpy (buf + kTcpRecordHeaderLen, payload, 5);
  TcpRecord rec;
  std::string err;
  /* Incomplete: wait. */
  for (size_t n = 0; n < kTcpRecordHeaderLen + 5; n++)
    fail_unless_equals_int (parse_tcp_record (buf, n, rec, err), 0);
  fail_unless_equals_int (parse_tcp_record (buf, kTcpRecordHeaderLen + 5, rec, err), kTcpRecordHeaderLen + 5);
  fail_unless_equals_int (rec.stream, 7);
  fail_unless_equals_int (rec.flags, kTcpFin);
  fail_unless_equals_int (rec.len, 5);
  fail_unless (memcmp (rec.data, payload, 5) == 0);

  encode_tcp_record_header (buf, 1, 0, kTcpMaxRecordLen + 1);
  fail_unless_equals_int (parse_tcp_record (buf, sizeof buf, rec, err), -1);
  fail_unless (err.find ("malformed TCP fallback record (length 16385") != std::string::npos, "%s", err.c_str ());
  encode_tcp_record_header (buf, 1, 0x10, 0);
  fail_unless_equals_int (parse_tcp_record (buf, sizeof buf, rec, err), -1);
  encode_tcp_record_header (buf, 1, kTcpKeepAlive, 0);
  fail_unless_equals_int (parse_tcp_record (buf, sizeof buf, rec, err), -1);
  encode_tcp_record_header (buf, kTcpKeepAliveStream, kTcpKeepAlive, 0);
  fail_unless_equals_int (parse_tcp_record (buf, sizeof buf, rec, err), kTcpRecordHeaderLen);
}
GST_END_TEST;

static Suite *
framing_suite (void)
{
  Suite *s = suite_create ("quicframing");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_roundtrip_any_split);
  tcase_add_test (tc, test_buffer_header_sizes);
  tcase_add_test (tc, test_upstream_events);
  tcase_add_test (tc, test_navigation_frames);
  tcase_add_test (tc, test_navigation_malformed);
  tcase_add_test (tc, test_malformed);
  tcase_add_test (tc, test_event_content_errors);
  tcase_add_test (tc, test_purposes);
  tcase_add_test (tc, test_tcp_records);
  return s;
}

GST_CHECK_MAIN (framing);
