/* gstwayrayquic: quicsink and quicsrc.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#  include "config.h"
#endif

#include "gstquiccommon.h"
#include "gstquicsink.h"
#include "gstquicsrc.h"

#include <gst/video/video.h>

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;
  /* Navigation events from the peer carry GstNavigationModifierType
   * fields; the type must exist before their structures are parsed. */
  g_type_ensure (GST_TYPE_NAVIGATION_MODIFIER_TYPE);
  wrq::register_connection_meta ();
  ret |= GST_ELEMENT_REGISTER (quicsink, plugin);
  ret |= GST_ELEMENT_REGISTER (quicsrc, plugin);
  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, wayrayquic,
    "WayRay transport: QUIC (ngtcp2 + GnuTLS) with a TCP+TLS fallback",
    plugin_init, VERSION, GST_LICENSE, GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
