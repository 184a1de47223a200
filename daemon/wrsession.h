/* A session: one wayraysrc compositor with the session command, inside the
 * server pipeline file, whose display is gated until its client presents
 * the ticket of its last welcome. A session lives in a worker process of
 * its own (see wrworker.cpp), so nothing that happens in it reaches another
 * session.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wrcontrol.h"
#include "wrdaemon.h"
#include "wrscreen.h"
#include "wrsessionclipboard.h"
#include "wrlatestart.h"
#include "wrvideorate.h"

#include <gst/gst.h>

#include <atomic>
#include <string>
#include <vector>

namespace wayray {

struct Session;

/* What a session needs from the process that holds it. */
class SessionHost {
 public:
  virtual ~SessionHost () = default;
  virtual const DaemonConfig &config () = 0;
  virtual const PipelineFile &server_file () = 0;
  /* The session cannot go on (pipeline error, its command ended). */
  virtual void session_ended (int id, const std::string &why) = 0;
  /* Attached, detached: listings should change. */
  virtual void session_changed (int id) = 0;
  /* The session's keyboard got another keymap, its output another scale
   * or its client another number of monitors: a nested desktop that keeps
   * its own is told. */
  virtual void desktop_changed (int id, const Keymap &keymap, int scale, int outputs) = 0;
  /* The session @id if it still exists (for callbacks that outlive it). */
  virtual Session *find_session (int id) = 0;
};

struct Session {
  SessionHost *host = nullptr;
  int id = 0;
  std::string token_name;
  guint port = 0;
  std::string socket_name;
  int width = 0, height = 0;
  gint64 created_us = 0;
  /* Whether the session has a sound server (wrsound.h): the pipeline
   * file's audio parts are used. */
  bool sound = false;
  /* The applications' environment (NAME=value); empty: the process's. */
  std::vector<std::string> app_env;

  GstElement *pipeline = nullptr;
  GstElement *src = nullptr, *size = nullptr, *gate = nullptr, *net = nullptr, *netin = nullptr;
  std::vector<GstElement *> gates;   /* every valve named gate*: display, video, ... */
  GstElement *ctl = nullptr, *ticket_sink = nullptr;
  guint bus_watch = 0;
  VideoRate video_rate;         /* the encoder's bitrate, when there is video */
  LateStart late;               /* the capture of its speakers (wrlatestart.h) */
  SessionClipboard clipboard;   /* with the attached client */

  /* Attachment, main thread only (except `verified`, read by probes). */
  std::string pending_ticket;
  ClientScreen pending_screen;
  std::string pending_client, pending_video;
  /* What the first client decodes ("h264:PROFILE,..."): the session's
   * encoder makes the best profile it takes (h264_profile), for good;
   * later clients that cannot decode it get everything losslessly. */
  std::string first_video, h264_profile;
  std::atomic<bool> verified { false };
  /* Connection events of the session's connections, kept by the bus sync
   * handler (which also closes the gates on every change) as they happen:
   * `peer_up` is the latest state, `up_conn` the connection of the latest
   * "up", `unhandled` the events the main loop has not seen yet. */
  std::atomic<bool> peer_up { false };
  std::atomic<guint64> up_conn { 0 };
  std::atomic<int> unhandled { 0 };
  /* A valid ticket arrived and its connection was admitted: the next
   * connection event brings it up (the events of the one it replaced come
   * first). */
  bool ticket_ok = false;
  guint64 admitted_conn = 0;    /* the connection the ticket admitted */
  void try_attach ();
  std::string client;           /* who is attached, for listings */
  guint64 attaches = 0;

  ~Session ();
  bool start (GError **error);
  void close_gate (const char *why);
  void set_gates (bool open);
  void open_gate ();
  void set_size (int w, int h);
  /* The attached client's screen changed size (its `wayray-resize`
   * event): the session follows at once after a quiet spell, else once
   * the size has held still for kResizeSettleMs. Sizes outside 16..8192
   * are ignored. */
  void request_size (int w, int h, const MonitorLayout &monitors);
  void apply_requested_size ();
  static constexpr guint kResizeSettleMs = 150;
  guint resize_timer = 0;
  int want_w = 0, want_h = 0;
  MonitorLayout want_monitors;
  /* The client's monitors: wayraysrc gets one output per monitor (and a
   * nested sway as many of its own); not for a desktop of fixed size. */
  void set_monitors (const MonitorLayout &layout);
  void log_monitors () const;
  MonitorLayout monitors;
  guint64 resizes = 0;
  void on_ticket (GstStructure *msg, const MessageOrigin &origin);
  /* The seat's router: its connections come through @fd (the elements
   * take duplicates). */
  void set_relay (int fd);
  std::string route;            /* connection-ID prefix (hex) */
  int relay_fd = -1;            /* given before start, closed once taken */
  void attach ();
  bool set_video (bool on);
  void send_control (GstStructure *msg);
  /* One line per element that keeps statistics. */
  std::string stats ();
  /* The next client proves its token with ticket_proof (token, ticket). */
  /* @video: the video codecs the client decodes ("h264", or empty: the
   * session's damagetilers send everything losslessly while it is attached). */
  void expect (const std::string &proof, const ClientScreen &screen, const std::string &client,
      const std::string &video, const Keymap &keymap);
  /* The attached client's scale factor (HiDPI), for wayraysrc's output and
   * the nested desktop. */
  void set_scale (int scale);
  int scale = 1;
  /* Who follows the client's screen:
   * - Compositor (kiosk): wayraysrc's outputs take its size, monitors and
   *   scale;
   * - Desktop (sway): wayraysrc's outputs take its size and monitors, the
   *   nested desktop its scale on its own outputs (wayraysrc stays at 1,
   *   or the desktop's picture would be drawn at half the pixels and blown
   *   up);
   * - Fixed (weston 10, whose Wayland backend cannot change its screen
   *   once started): the session keeps the first client's size, one
   *   output and scale 1, whatever the later clients' screens. */
  enum class ScreenBy { Compositor, Desktop, Fixed } screen_by = ScreenBy::Compositor;
  /* wayraysrc's own Xwayland: for the kiosk policy (a nested desktop runs
   * its own). */
  bool xwayland = true;
  /* The client's keymap, or the session's default for a client that says
   * none (so the next client never types with the last one's). */
  void set_keymap (const Keymap &keymap);
  Keymap default_keymap, keymap, pending_keymap;
  void detach (const std::string &reason);
};

}  // namespace wayray
