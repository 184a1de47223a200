/* Region markers shared by the elements of this plugin. Both use the stock
 * GstVideoRegionOfInterestMeta so they survive any element that copies
 * video metas, with these roi_type names:
 *
 * "wayray-video": on a buffer of damagetiler's video pad (the atlas of the
 *   video regions), a rectangle of the full frame the client takes from the
 *   video; its WAYRAY_ATLAS_PARAM parameter (int fields x, y) says where that
 *   rectangle's top-left pixel is in the atlas. Without the parameter the
 *   whole buffer goes at the rectangle's position.
 * "wayray-lossy": on a buffer of damagetiler's tiles pad, a region where the
 *   client's pixels may differ from the frame (it shows them from the video
 *   path); wayraytileenc never uses it as a reference and sends every
 *   damaged tile in it in full. A refinement buffer carries it together
 *   with damage over the same region.
 * "wayray-move": on a buffer of damagetiler's tiles pad, a block that moved
 *   since the previous frame (a scroll, a dragged window), found by the
 *   classifier: the rectangle is where it is now, its WAYRAY_MOVE_PARAM
 *   parameter (int fields x, y) where it was. wayraytileenc takes it
 *   instead of searching for moves itself where it lies; a wrong one only
 *   costs a useless copy, which the tiles after it correct.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#define WAYRAY_ROI_VIDEO "wayray-video"
#define WAYRAY_ROI_LOSSY "wayray-lossy"
#define WAYRAY_ROI_MOVE "wayray-move"
#define WAYRAY_MOVE_PARAM "wayray-move-from"

#define WAYRAY_ATLAS_PARAM "wayray-atlas"

/* Video encoders drop region metas, so the rectangles also travel as a
 * serialized custom downstream event on the video pad, sent before the
 * first frame and whenever they change: a structure of this name whose
 * "rects" field is an array of ints, six per rectangle (x, y, width,
 * height on the screen, x, y in the atlas). An event with int fields x, y
 * instead places the whole frame there. Encoders and decoders pass
 * serialized events on in order with the frames. */
#define WAYRAY_VIDEO_REGION_EVENT "wayray-video-region"
#define WAYRAY_VIDEO_REGION_MAX_RECTS 4096
