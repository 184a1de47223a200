/* wrechowatch: key → changed picture, timed in the client.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrechowatch.h"

#include <gst/video/video.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace wayray {

/* The region's pixels in @sample, row after row, clipped to the frame;
 * false when the sample is not a mappable packed video frame. */
static bool
read_region (GstSample *sample, const Region &r, std::vector<guint8> *out)
{
  GstVideoInfo info;
  if (!sample || !gst_video_info_from_caps (&info, gst_sample_get_caps (sample)))
    return false;
  if (GST_VIDEO_INFO_N_PLANES (&info) != 1)
    return false;
  GstVideoFrame frame;
  if (!gst_video_frame_map (&frame, &info, gst_sample_get_buffer (sample), GST_MAP_READ))
    return false;
  int x0 = std::min (r.x, info.width), y0 = std::min (r.y, info.height);
  int x1 = std::min (r.x + r.width, info.width), y1 = std::min (r.y + r.height, info.height);
  int pstride = GST_VIDEO_INFO_COMP_PSTRIDE (&info, 0);
  out->clear ();
  for (int y = y0; y < y1; y++) {
    const guint8 *row = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0)
        + (gsize) y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0) + (gsize) x0 * pstride;
    out->insert (out->end (), row, row + (gsize) (x1 - x0) * pstride);
  }
  gst_video_frame_unmap (&frame);
  return true;
}

void
EchoWatch::arm (gint64 now_us, GstSample *shown, const Region *r)
{
  sent_us = now_us;
  with_region = r != nullptr;
  before.clear ();
  if (r) {
    region = *r;
    read_region (shown, region, &before);
  }
}

double
EchoWatch::frame (GstSample *sample, gint64 now_us)
{
  if (!sent_us)
    return -1;
  if (with_region && !before.empty ()) {
    std::vector<guint8> now;
    if (read_region (sample, region, &now) && now == before)
      return -1;
  }
  double ms = (now_us - sent_us) / 1000.0;
  sent_us = 0;
  before.clear ();
  return ms;
}

bool
parse_region (const char *text, Region *r, const char **rest)
{
  int v[4];
  const char *p = text;
  for (int i = 0; i < 4; i++) {
    while (*p == ' ')
      p++;
    char *end = nullptr;
    long n = strtol (p, &end, 10);
    if (end == p || n < 0 || n > 65535)
      return false;
    v[i] = (int) n;
    p = end;
  }
  if (v[2] == 0 || v[3] == 0 || (*p != ' ' && *p != '\0'))
    return false;
  while (*p == ' ')
    p++;
  r->x = v[0];
  r->y = v[1];
  r->width = v[2];
  r->height = v[3];
  if (rest)
    *rest = p;
  return true;
}

}  // namespace wayray
