/* Video codec choice.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcodecs.h"

#include <gst/gst.h>

#include <algorithm>
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

std::vector<std::string>
h264_profiles_of (const std::string &factory, bool sink)
{
  std::vector<std::string> out;
  GstElementFactory *f = gst_element_factory_find (factory.c_str ());
  if (!f)
    return out;
  for (const GList *l = gst_element_factory_get_static_pad_templates (f); l; l = l->next) {
    auto *t = static_cast<GstStaticPadTemplate *> (l->data);
    if (t->direction != (sink ? GST_PAD_SINK : GST_PAD_SRC))
      continue;
    GstCaps *caps = gst_static_caps_get (&t->static_caps);
    for (guint i = 0; i < gst_caps_get_size (caps); i++) {
      GstStructure *s = gst_caps_get_structure (caps, i);
      if (!gst_structure_has_name (s, "video/x-h264"))
        continue;
      const GValue *v = gst_structure_get_value (s, "profile");
      if (v && G_VALUE_HOLDS_STRING (v)) {
        out.push_back (g_value_get_string (v));
      } else if (v && GST_VALUE_HOLDS_LIST (v)) {
        for (guint k = 0; k < gst_value_list_get_size (v); k++) {
          const GValue *e = gst_value_list_get_value (v, k);
          if (G_VALUE_HOLDS_STRING (e))
            out.push_back (g_value_get_string (e));
        }
      }
    }
    gst_caps_unref (caps);
  }
  gst_object_unref (f);
  return out;
}

bool
h264_profile_decodable (const std::string &profile, const std::vector<std::string> &decoder)
{
  if (decoder.empty ())
    return true;
  auto takes = [&] (const char *p) {
    return std::find (decoder.begin (), decoder.end (), p) != decoder.end ();
  };
  if (takes (profile.c_str ()))
    return true;
  /* A constrained-baseline stream is also a valid baseline, main and high
   * stream; a main stream a valid high one. */
  if (profile == "constrained-baseline")
    return takes ("baseline") || takes ("main") || takes ("high");
  if (profile == "main")
    return takes ("high");
  return false;
}

std::string
pick_h264_profile (const std::vector<std::string> &decoder, const std::vector<std::string> &encoder)
{
  for (const char *p : { "high", "main", "constrained-baseline" }) {
    bool made = encoder.empty () || std::find (encoder.begin (), encoder.end (), p) != encoder.end ();
    if (made && h264_profile_decodable (p, decoder))
      return p;
  }
  return "";
}

std::vector<std::string>
client_h264_profiles (const std::string &video)
{
  size_t colon = video.find (':');
  return colon == std::string::npos ? std::vector<std::string> () : codec_preference (video.substr (colon + 1));
}

std::string
video_format_for_profile (const std::string &profile)
{
  return profile == "high-4:4:4" ? "Y444" : "I420";
}

std::string
session_h264_profile (const std::string &encoder, const std::string &client_video, const std::string &chroma)
{
  if (chroma == "4:4:4") {
    const char *full = "high-4:4:4";
    std::vector<std::string> made = encoder.empty () ? std::vector<std::string> () : h264_profiles_of (encoder, false);
    if ((made.empty () || std::find (made.begin (), made.end (), full) != made.end ()) &&
        h264_profile_decodable (full, client_h264_profiles (client_video)))
      return full;
  }
  std::string p = pick_h264_profile (client_h264_profiles (client_video),
      encoder.empty () ? std::vector<std::string> () : h264_profiles_of (encoder, false));
  /* A decoder that takes none the encoder makes: the best the encoder
   * makes (that client gets everything losslessly; the next may not). */
  return p.empty () ? pick_h264_profile ({}, encoder.empty () ? std::vector<std::string> () :
      h264_profiles_of (encoder, false)) : p;
}

}  // namespace wayray
