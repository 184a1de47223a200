/* Region markers shared by the elements of this plugin. Both use the stock
 * GstVideoRegionOfInterestMeta so they survive any element that copies
 * video metas, with these roi_type names:
 *
 * "wayray-video": on a buffer of damagetiler's video pad, the position and
 *   size of the cropped region in the full frame.
 * "wayray-lossy": on a buffer of damagetiler's tiles pad, a region where the
 *   client's pixels may differ from the frame (it shows them from the video
 *   path); wayraytileenc never uses it as a reference and sends every
 *   damaged tile in it in full. A refinement buffer carries it together
 *   with damage over the same region.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#define WAYRAY_ROI_VIDEO "wayray-video"
#define WAYRAY_ROI_LOSSY "wayray-lossy"

/* Video encoders drop region metas, so the position also travels as a
 * serialized custom downstream event on the video pad, sent before the
 * first frame of a region and whenever it changes: a structure of this
 * name with int fields x, y, width, height. Encoders and decoders pass
 * serialized events on in order with the frames. */
#define WAYRAY_VIDEO_REGION_EVENT "wayray-video-region"
