/* Video codec choice for the pipeline files: the best H.264 encoder and
 * decoder this machine really has, hardware first, software as fallback.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <string>
#include <vector>

namespace wayray {

struct CodecChoice {
  std::string factory;          /* element factory name, "" if none usable */
  std::string launch;           /* gst-launch fragment with its settings */
  bool hardware = false;
};

/* Preference order used by default (first usable wins). */
const std::vector<std::string> &default_h264_encoders ();
const std::vector<std::string> &default_h264_decoders ();

/* An element is usable when its factory exists and an instance reaches
 * READY (a VA-API element without a device does not). @preference
 * overrides the default order; "auto" or empty means the default. */
CodecChoice pick_h264_encoder (const std::vector<std::string> &preference = {});
CodecChoice pick_h264_decoder (const std::vector<std::string> &preference = {});

/* "a,b,c" → {a, b, c}; "auto" or "" → {}. */
std::vector<std::string> codec_preference (const std::string &list);

/* The H.264 profiles an element takes (@sink, a decoder) or makes (an
 * encoder), from its pad template; empty when the template names none
 * (it takes or makes any). */
std::vector<std::string> h264_profiles_of (const std::string &factory, bool sink);

/* The profile a session encodes for a client whose decoder takes
 * @decoder and an encoder that makes @encoder (empty: any): the first of
 * high, main and constrained-baseline both allow; "" when none. */
std::string pick_h264_profile (const std::vector<std::string> &decoder, const std::vector<std::string> &encoder);

/* Whether a decoder that takes @decoder (empty: any) decodes @profile;
 * constrained-baseline streams are baseline and main streams too. */
bool h264_profile_decodable (const std::string &profile, const std::vector<std::string> &decoder);

/* The H.264 profiles in a client's "h264:PROFILE,..." (empty: any). */
std::vector<std::string> client_h264_profiles (const std::string &video);

/* The profile a session with @encoder makes for a first client
 * @client_video: high-4:4:4 when @chroma is "4:4:4" and both the encoder
 * makes it and the client's decoder takes it, else high, main or
 * constrained-baseline. */
std::string session_h264_profile (const std::string &encoder, const std::string &client_video,
    const std::string &chroma = "4:2:0");

/* The raw format the encoder gets for @profile: Y444 for high-4:4:4, else
 * I420. */
std::string video_format_for_profile (const std::string &profile);

}  // namespace wayray
