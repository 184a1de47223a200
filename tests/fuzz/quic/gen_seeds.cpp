/* Writes a seed corpus for fuzz-quic-framing with the real encoder: a media
 * stream with caps, segment, buffers and a cursor event, and a control
 * stream with upstream events. Each file starts with the chunk-size byte.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstquicframing.h"
#include "gstquicrelaywire.h"

#include <gst/gst.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>

#include <arpa/inet.h>

#include <cstdio>
#include <string>
#include <vector>

static void
write_seed (const std::string & dir, const char *name, guint8 chunk, const std::vector<guint8> & bytes)
{
  std::vector<guint8> all;
  all.push_back (chunk);
  all.insert (all.end (), bytes.begin (), bytes.end ());
  std::string path = dir + "/" + name;
  g_file_set_contents (path.c_str (), (const gchar *) all.data (), all.size (), nullptr);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  if (argc < 4)
    return 1;
  std::string dir = argv[1];
  g_mkdir_with_parents (dir.c_str (), 0755);

  std::vector<guint8> media;
  wrq::Preamble pre;
  pre.purpose = wrq::Purpose::Video;
  pre.gop_stream = true;
  pre.gop = 3;
  pre.name = "video";
  wrq::encode_preamble (media, pre);
  GstCaps *caps = gst_caps_from_string ("video/x-h264,stream-format=byte-stream,width=(int)64,height=(int)64");
  wrq::encode_caps (media, caps);
  gst_caps_unref (caps);
  GstSegment seg;
  gst_segment_init (&seg, GST_FORMAT_TIME);
  wrq::encode_segment (media, &seg);
  for (int i = 0; i < 3; i++) {
    GstBuffer *b = gst_buffer_new_allocate (nullptr, 40 * i, nullptr);
    gst_buffer_memset (b, 0, (guint8) i, 40 * i);
    GST_BUFFER_PTS (b) = i * GST_MSECOND;
    if (i)
      GST_BUFFER_FLAG_SET (b, GST_BUFFER_FLAG_DELTA_UNIT);
    wrq::encode_buffer (media, b);
    gst_buffer_unref (b);
  }
  GstStructure *s = gst_structure_new ("wayray-cursor", "visible", G_TYPE_BOOLEAN, TRUE, "x", G_TYPE_INT, 3,
      "y", G_TYPE_INT, 4, nullptr);
  GstEvent *ev = gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM, s);
  wrq::encode_event (media, ev);
  gst_event_unref (ev);
  ev = gst_event_new_eos ();
  wrq::encode_event (media, ev);
  gst_event_unref (ev);
  write_seed (dir, "media-whole", 127, media);
  write_seed (dir, "media-bytewise", 0, media);

  std::vector<guint8> control;
  pre = wrq::Preamble ();
  pre.purpose = wrq::Purpose::Control;
  pre.name = "control";
  wrq::encode_preamble (control, pre);
  ev = gst_navigation_event_new_mouse_button_press (1, 10.0, 20.0, GST_NAVIGATION_MODIFIER_NONE);
  wrq::encode_upstream_event (control, "display", ev);
  gst_event_unref (ev);
  ev = gst_navigation_event_new_key_press ("Return", GST_NAVIGATION_MODIFIER_SHIFT_MASK);
  wrq::encode_upstream_event (control, "display", ev);
  gst_event_unref (ev);
  ev = gst_navigation_event_new_mouse_scroll (1.0, 2.0, 0.0, -1.0, GST_NAVIGATION_MODIFIER_NONE);
  wrq::encode_upstream_event (control, "display", ev);
  gst_event_unref (ev);
  ev = gst_navigation_event_new_touch_up (0, 5.0, 6.0, GST_NAVIGATION_MODIFIER_NONE);
  wrq::encode_upstream_event (control, "display", ev);
  gst_event_unref (ev);
  ev = gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 1);
  wrq::encode_upstream_event (control, "video", ev);
  gst_event_unref (ev);
  write_seed (dir, "control", 5, control);

  /* The same two streams as TCP fallback records, for fuzz-quic-tcp-records
   * (its corpus has no leading chunk-size byte). */
  std::vector<guint8> mux;
  auto add = [&mux] (guint32 stream, guint8 flags, const std::vector<guint8> & bytes) {
    for (size_t off = 0; off < bytes.size () || (off == 0 && bytes.empty ()); off += 700) {
      size_t n = MIN ((size_t) 700, bytes.size () - off);
      guint8 h[wrq::kTcpRecordHeaderLen];
      bool last = off + n >= bytes.size ();
      wrq::encode_tcp_record_header (h, stream, last ? flags : 0, (guint32) n);
      mux.insert (mux.end (), h, h + sizeof h);
      mux.insert (mux.end (), bytes.begin () + off, bytes.begin () + off + n);
      if (bytes.empty ())
        break;
    }
  };
  add (0, 0, control);
  add (1, wrq::kTcpFin, media);
  add (wrq::kTcpKeepAliveStream, wrq::kTcpKeepAlive, {});
  std::string tcpdir = std::string (argv[3]);
  g_mkdir_with_parents (tcpdir.c_str (), 0755);
  g_file_set_contents ((tcpdir + "/mux").c_str (), (const gchar *) mux.data (), mux.size (), nullptr);

  /* Relay messages and route preambles, for fuzz-quic-relay. */
  if (argc > 4) {
    std::string relaydir = argv[4];
    g_mkdir_with_parents (relaydir.c_str (), 0755);
    auto relay_seed = [&relaydir] (const char *name, guint8 kind, const sockaddr * addr, socklen_t addrlen,
        size_t seg, size_t payload) {
      std::vector<guint8> msg (wrq::kRelayHeaderLen + wrq::kRelayMaxAddr);
      msg.resize (wrq::encode_relay_header (msg.data (), kind, addr, addrlen, seg));
      for (size_t i = 0; i < payload; i++)
        msg.push_back ((guint8) (i == 0 ? 0x40 : i * 7));
      g_file_set_contents ((relaydir + "/" + name).c_str (), (const gchar *) msg.data (), msg.size (), nullptr);
    };
    sockaddr_in v4 {};
    v4.sin_family = AF_INET;
    v4.sin_port = htons (4433);
    v4.sin_addr.s_addr = htonl (0x7f000001);
    sockaddr_in6 v6 {};
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons (4433);
    v6.sin6_addr.s6_addr[15] = 1;
    relay_seed ("datagram-v4", wrq::kRelayDatagram, (sockaddr *) &v4, sizeof v4, 0, 1200);
    relay_seed ("batch-v6", wrq::kRelayDatagram, (sockaddr *) &v6, sizeof v6, 1200, 3000);
    relay_seed ("tcp-v4", wrq::kRelayTcp, (sockaddr *) &v4, sizeof v4, 0, 0);
    for (const char *prefix : { "", "\x0a\x0b\x0c\x0d" }) {
      guint8 pre[wrq::kTcpRouteLen];
      std::string p (prefix, *prefix ? wrq::kMaxRoutePrefix : 0);
      wrq::encode_tcp_route (pre, p);
      g_file_set_contents ((relaydir + "/route-" + (p.empty () ? "none" : "0a0b0c0d")).c_str (),
          (const gchar *) pre, sizeof pre, nullptr);
    }
    g_file_set_contents ((relaydir + "/hex").c_str (), "0A0b0c0D", 8, nullptr);
  }

  /* Audio datagrams, for fuzz-quic-datagram. */
  if (argc > 5) {
    std::string dgdir = argv[5];
    g_mkdir_with_parents (dgdir.c_str (), 0755);
    guint8 opus[120];
    for (size_t i = 0; i < sizeof opus; i++)
      opus[i] = (guint8) (i * 13 + 5);
    GstBuffer *b = gst_buffer_new_memdup (opus, sizeof opus);
    GST_BUFFER_PTS (b) = 5 * GST_SECOND;
    GST_BUFFER_DURATION (b) = 10 * GST_MSECOND;
    std::vector<guint8> d;
    wrq::encode_datagram (d, 6, b);
    g_file_set_contents ((dgdir + "/opus").c_str (), (const gchar *) d.data (), d.size (), nullptr);
    GST_BUFFER_FLAG_SET (b, GST_BUFFER_FLAG_DISCONT);
    GST_BUFFER_DTS (b) = 5 * GST_SECOND;
    d.clear ();
    wrq::encode_datagram (d, 10, b);
    g_file_set_contents ((dgdir + "/opus-discont").c_str (), (const gchar *) d.data (), d.size (), nullptr);
    gst_buffer_unref (b);
  }

  FILE *stamp = fopen (argv[2], "w");   /* stamp, then the TCP, relay and datagram corpus dirs */
  if (stamp)
    fclose (stamp);
  return 0;
}
