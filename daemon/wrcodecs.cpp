/* Video codec choice.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcodecs.h"

#include <gst/gst.h>

#include <cstring>
#include <map>

namespace wayray {

namespace {

struct Known {
  const char *launch;
  bool hardware;
};

/* Settings for interactive desktop video: no B-frames or lookahead, a key
 * unit every two seconds at most (quicksink resets stale groups and asks
 * for key units itself when the network lags). */
const std::map<std::string, Known> &
known_codecs ()
{
  static const std::map<std::string, Known> known = {
    { "vah264enc", { "vah264enc key-int-max=120 b-frames=0", true } },
    { "vaapih264enc", { "vaapih264enc keyframe-period=120 max-bframes=0", true } },
    { "nvh264enc", { "nvh264enc zerolatency=true gop-size=120 bframes=0", true } },
    { "x264enc", { "x264enc tune=zerolatency speed-preset=superfast key-int-max=120 bitrate=3000", false } },
    { "openh264enc", { "openh264enc complexity=low gop-size=120 bitrate=3000000", false } },
    { "vah264dec", { "vah264dec", true } },
    { "vaapih264dec", { "vaapih264dec", true } },
    { "nvh264dec", { "nvh264dec", true } },
    { "avdec_h264", { "avdec_h264", false } },
    { "openh264dec", { "openh264dec", false } },
  };
  return known;
}

bool
usable (const std::string &factory)
{
  GstElement *e = gst_element_factory_make (factory.c_str (), nullptr);
  if (!e)
    return false;
  /* Hardware elements may be registered yet have no device behind them. */
  GstStateChangeReturn r = gst_element_set_state (e, GST_STATE_READY);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_object_unref (e);
  return r != GST_STATE_CHANGE_FAILURE;
}

/* The launch fragment with only the settings this version of the element
 * has: a renamed property must not stop a session from starting. */
std::string
settings_it_has (const std::string &factory, const char *launch)
{
  GstElement *e = gst_element_factory_make (factory.c_str (), nullptr);
  if (!e)
    return factory;
  std::string out = factory;
  gchar **words = g_strsplit (launch, " ", -1);
  for (gchar **w = words + 1; *w; w++) {
    gchar *eq = strchr (*w, '=');
    if (!eq)
      continue;
    std::string prop (*w, eq - *w);
    if (g_object_class_find_property (G_OBJECT_GET_CLASS (e), prop.c_str ()))
      out += std::string (" ") + *w;
  }
  g_strfreev (words);
  gst_object_unref (e);
  return out;
}

CodecChoice
pick (const std::vector<std::string> &order)
{
  for (const std::string &f : order) {
    if (!usable (f))
      continue;
    CodecChoice c;
    c.factory = f;
    auto it = known_codecs ().find (f);
    c.launch = it != known_codecs ().end () ? settings_it_has (f, it->second.launch) : f;
    c.hardware = it != known_codecs ().end () && it->second.hardware;
    return c;
  }
  return {};
}

}  // namespace

const std::vector<std::string> &
default_h264_encoders ()
{
  static const std::vector<std::string> order = { "vah264enc", "vaapih264enc", "nvh264enc", "x264enc",
    "openh264enc" };
  return order;
}

const std::vector<std::string> &
default_h264_decoders ()
{
  static const std::vector<std::string> order = { "vah264dec", "vaapih264dec", "nvh264dec", "avdec_h264",
    "openh264dec" };
  return order;
}

CodecChoice
pick_h264_encoder (const std::vector<std::string> &preference)
{
  return pick (preference.empty () ? default_h264_encoders () : preference);
}

CodecChoice
pick_h264_decoder (const std::vector<std::string> &preference)
{
  return pick (preference.empty () ? default_h264_decoders () : preference);
}

std::vector<std::string>
codec_preference (const std::string &list)
{
  std::vector<std::string> out;
  if (list.empty () || list == "auto")
    return out;
  gchar **parts = g_strsplit (list.c_str (), ",", -1);
  for (gchar **p = parts; *p; p++) {
    g_strstrip (*p);
    if (**p)
      out.push_back (*p);
  }
  g_strfreev (parts);
  return out;
}

}  // namespace wayray
