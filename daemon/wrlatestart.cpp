/* Elements that start after their pipeline (wrlatestart.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrlatestart.h"

#include "wrcontrol.h"

#include <chrono>

namespace wayray {

void
LateStart::hold (GstElement *pipeline, const char *factory)
{
  GstIterator *it = gst_bin_iterate_recurse (GST_BIN (pipeline));
  GValue v = G_VALUE_INIT;
  while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *e = GST_ELEMENT (g_value_get_object (&v));
    GstElementFactory *f = gst_element_get_factory (e);
    if (f && g_strcmp0 (GST_OBJECT_NAME (f), factory) == 0) {
      gst_element_set_locked_state (e, TRUE);
      held_.push_back (GST_ELEMENT (gst_object_ref (e)));
    }
    g_value_reset (&v);
  }
  g_value_unset (&v);
  gst_iterator_free (it);
}

void
LateStart::start (GstElement *pipeline, guint retry_ms, std::function<void (const std::string &)> note)
{
  if (held_.empty () || thread_.joinable ())
    return;
  stopping_ = false;
  done_ = false;
  GstClockTime base = gst_element_get_base_time (pipeline);
  thread_ = std::thread ([this, base, retry_ms, note] { run (base, retry_ms, note); });
}

void
LateStart::run (GstClockTime base_time, guint retry_ms, std::function<void (const std::string &)> note)
{
  for (GstElement *e : held_) {
    int failures = 0;
    while (!stopping_) {
      gst_element_set_base_time (e, base_time);
      gint64 since = g_get_monotonic_time ();
      if (gst_element_set_state (e, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE) {
        if (failures > 0) {
          std::string line = std::string (GST_OBJECT_NAME (e)) + " started after " + std::to_string (failures) +
              " failed tries";
          run_on_main ([note, line] { note (line); });
        }
        break;
      }
      gst_element_set_state (e, GST_STATE_NULL);
      if (stopping_)
        break;
      failures++;
      std::string line = std::string (GST_OBJECT_NAME (e)) + " did not start within " +
          std::to_string ((g_get_monotonic_time () - since) / G_USEC_PER_SEC) + " s; trying again in " +
          std::to_string (retry_ms / 1000) + " s";
      run_on_main ([note, line] { note (line); });
      for (guint waited = 0; waited < retry_ms && !stopping_; waited += 50)
        std::this_thread::sleep_for (std::chrono::milliseconds (50));
    }
  }
  done_ = true;
}

void
LateStart::stop ()
{
  if (thread_.joinable ()) {
    stopping_ = true;
    /* A start waiting for PipeWire ends at a flush (again, for one that
     * began its wait after the first). */
    while (!done_) {
      for (GstElement *e : held_)
        gst_element_send_event (e, gst_event_new_flush_start ());
      std::this_thread::sleep_for (std::chrono::milliseconds (20));
    }
    thread_.join ();
  }
  for (GstElement *e : held_) {
    gst_element_set_state (e, GST_STATE_NULL);
    gst_element_set_locked_state (e, FALSE);
    gst_object_unref (e);
  }
  held_.clear ();
}

}  // namespace wayray
