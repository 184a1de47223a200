/* WayRay cursor events: the pointer image and position, published by
 * wayraysrc so that a client can draw the cursor locally.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#ifndef WAYRAY_API
#  define WAYRAY_API __attribute__ ((visibility ("default")))
#endif

/* Structure name of the serialized custom downstream event. */
#define GST_WAYRAY_CURSOR_EVENT_NAME "wayray-cursor"

/**
 * GstWayrayCursor:
 * @visible: whether a cursor is shown at all (hidden when a client sets a
 *   NULL cursor surface)
 * @x, @y: the pointer position in output pixels (the hotspot lands here)
 * @serial: identifies the image; it changes whenever the image changes, so
 *   a receiver may keep images by serial
 * @hotspot_x, @hotspot_y: the image pixel that sits at (@x, @y)
 * @image: when not %NULL, the new image: @width x @height pixels,
 *   premultiplied ARGB8888 in native little-endian (B, G, R, A bytes), stride
 *   @width * 4. %NULL in position-only updates.
 */
typedef struct {
  gboolean visible;
  gint x, y;
  guint serial;
  gint hotspot_x, hotspot_y;
  gint width, height;
  GstBuffer *image;
} GstWayrayCursor;

/* Builds the event. The image buffer, if any, is referenced, not copied. */
WAYRAY_API GstEvent *gst_wayray_cursor_event_new (const GstWayrayCursor * cursor);

/* TRUE if @event is a cursor event. */
WAYRAY_API gboolean gst_wayray_cursor_event_is (GstEvent * event);

/* Parses a cursor event into @cursor; cursor->image is a new reference (or
 * NULL) that the caller must unref. Returns FALSE for any other event or a
 * malformed one (missing fields, image size not width*height*4, image larger
 * than 256x256). */
WAYRAY_API gboolean gst_wayray_cursor_event_parse (GstEvent * event, GstWayrayCursor * cursor);

G_END_DECLS
