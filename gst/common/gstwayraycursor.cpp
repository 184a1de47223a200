/* WayRay cursor events.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstwayraycursor.h"

#define MAX_CURSOR_SIZE 256

GstEvent *
gst_wayray_cursor_event_new (const GstWayrayCursor * cursor)
{
  GstStructure *s = gst_structure_new (GST_WAYRAY_CURSOR_EVENT_NAME,
      "visible", G_TYPE_BOOLEAN, cursor->visible,
      "x", G_TYPE_INT, cursor->x,
      "y", G_TYPE_INT, cursor->y,
      "serial", G_TYPE_UINT, cursor->serial,
      "hotspot-x", G_TYPE_INT, cursor->hotspot_x,
      "hotspot-y", G_TYPE_INT, cursor->hotspot_y,
      "width", G_TYPE_INT, cursor->width,
      "height", G_TYPE_INT, cursor->height, nullptr);
  if (cursor->image)
    gst_structure_set (s, "image", GST_TYPE_BUFFER, cursor->image, nullptr);
  return gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM, s);
}

gboolean
gst_wayray_cursor_event_is (GstEvent * event)
{
  if (GST_EVENT_TYPE (event) != GST_EVENT_CUSTOM_DOWNSTREAM)
    return FALSE;
  const GstStructure *s = gst_event_get_structure (event);
  return s && gst_structure_has_name (s, GST_WAYRAY_CURSOR_EVENT_NAME);
}

gboolean
gst_wayray_cursor_event_parse (GstEvent * event, GstWayrayCursor * cursor)
{
  g_return_val_if_fail (cursor != nullptr, FALSE);
  if (!gst_wayray_cursor_event_is (event))
    return FALSE;

  const GstStructure *s = gst_event_get_structure (event);
  GstWayrayCursor c = { };
  if (!gst_structure_get (s,
          "visible", G_TYPE_BOOLEAN, &c.visible,
          "x", G_TYPE_INT, &c.x, "y", G_TYPE_INT, &c.y,
          "serial", G_TYPE_UINT, &c.serial,
          "hotspot-x", G_TYPE_INT, &c.hotspot_x, "hotspot-y", G_TYPE_INT, &c.hotspot_y,
          "width", G_TYPE_INT, &c.width, "height", G_TYPE_INT, &c.height, nullptr))
    return FALSE;
  if (c.width < 0 || c.height < 0 || c.width > MAX_CURSOR_SIZE || c.height > MAX_CURSOR_SIZE)
    return FALSE;

  if (gst_structure_has_field_typed (s, "image", GST_TYPE_BUFFER)) {
    GstBuffer *image = nullptr;
    gst_structure_get (s, "image", GST_TYPE_BUFFER, &image, nullptr);
    if (!image || gst_buffer_get_size (image) != (gsize) c.width * c.height * 4) {
      gst_clear_buffer (&image);
      return FALSE;
    }
    c.image = image;
  }
  *cursor = c;
  return TRUE;
}
