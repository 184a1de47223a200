/* The lossless damage path: damagetiler, wayraytileenc, wayraytiledec,
 * wayraycompositor.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstdamagetiler.h"
#include "gstwayraycompositor.h"
#include "gstwayraytiledec.h"
#include "gstwayraytileenc.h"

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;

  ret |= GST_ELEMENT_REGISTER (damagetiler, plugin);
  ret |= GST_ELEMENT_REGISTER (wayraytileenc, plugin);
  ret |= GST_ELEMENT_REGISTER (wayraytiledec, plugin);
  ret |= GST_ELEMENT_REGISTER (wayraycompositor, plugin);

  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, wayraytiles,
    "WayRay lossless damage path: tiling, tile codec and client compositor",
    plugin_init, VERSION, GST_LICENSE, GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
