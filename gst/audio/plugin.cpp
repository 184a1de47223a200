/* Sound: wayrayaudiogate (the sender's silence suppression) and
 * wayrayplayout (the receiver's playout buffer). docs/audio.md.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstwayrayaudiogate.h"
#include "gstwayrayplayout.h"

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;

  ret |= GST_ELEMENT_REGISTER (wayrayaudiogate, plugin);
  ret |= GST_ELEMENT_REGISTER (wayrayplayout, plugin);

  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, wayrayaudio,
    "WayRay sound: silence suppression and the playout buffer",
    plugin_init, VERSION, GST_LICENSE, GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
