/* Helpers shared by the element tests of the tile path.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "gstwayraydamagemeta.h"
#include "screengen.h"

#include <string>
#include <vector>

/* A BGRx frame holding @s with a damage meta listing @damage (no meta at
 * all when @full). */
static inline GstBuffer *
frame_buffer (const screengen::Screen & s, const std::vector<screengen::Rect> &damage,
    bool full, GstClockTime pts)
{
  GstBuffer *buf = gst_buffer_new_memdup (s.px.data (), s.px.size ());
  GST_BUFFER_PTS (buf) = pts;
  if (!full) {
    std::vector<GstVideoRectangle> r;
    for (const auto &d : damage)
      r.push_back ({d.x, d.y, d.w, d.h});
    gst_buffer_add_wayray_damage_meta (buf, r.data (), r.size (), s.w, s.h);
  }
  return buf;
}

static inline std::string
bgrx_caps (int w, int h)
{
  return "video/x-raw,format=BGRx,width=" + std::to_string (w) + ",height=" +
      std::to_string (h) + ",framerate=0/1";
}

/* TRUE when the BGRx buffer equals @s pixel for pixel. */
static inline bool
buffer_equals (GstBuffer * buf, const screengen::Screen & s)
{
  GstMapInfo map;
  if (!gst_buffer_map (buf, &map, GST_MAP_READ))
    return false;
  bool eq = map.size == s.px.size () && memcmp (map.data, s.px.data (), map.size) == 0;
  gst_buffer_unmap (buf, &map);
  return eq;
}

/* Collects error messages posted by an element without a pipeline. */
static inline GstBus *
attach_bus (GstElement * element)
{
  GstBus *bus = gst_bus_new ();
  gst_element_set_bus (element, bus);
  return bus;
}

/* Pops the first error on @bus; returns its debug string (or "" if none). */
static inline std::string
pop_error (GstBus * bus, GQuark domain, gint code)
{
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  if (!msg)
    return "";
  GError *err = NULL;
  gchar *dbg = NULL;
  gst_message_parse_error (msg, &err, &dbg);
  std::string out = dbg ? dbg : "(no debug)";
  bool match = err->domain == domain && err->code == code;
  g_error_free (err);
  g_free (dbg);
  gst_message_unref (msg);
  return match ? out : "wrong error domain/code: " + out;
}
