/* The daemon's view of one session: its starter (while it starts), the
 * connection to its worker, and what the worker last reported.
 *
 * What the daemon knows for itself (id, token, user, uid, port, socket,
 * starter) comes from the daemon or from the root-only session record;
 * everything a worker says is untrusted input from the session's user: it
 * is parsed strictly, bounded, and used for that session alone.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "wrdesktop.h"
#include "wrscreen.h"

#include <gst/gst.h>
#include <sys/types.h>

#include <string>

namespace wayray {

struct SessionProxy;

class ProxyHost {
 public:
  virtual ~ProxyHost () = default;
  /* The worker listens: hand out the welcome waiting for it. */
  virtual void proxy_ready (SessionProxy *p) = 0;
  /* The session could not start: refuse the waiting welcome with @reason. */
  virtual void proxy_failed (SessionProxy *p, const std::string &reason) = 0;
  /* Attached or detached: update listings and the service status. */
  virtual void proxy_changed (SessionProxy *p) = 0;
  /* The session is over (its worker is gone): forget it. */
  virtual void proxy_gone (SessionProxy *p, const std::string &why) = 0;
  /* The setup a new session's worker gets once it runs. */
  virtual GstStructure *proxy_setup (SessionProxy *p) = 0;
  /* The daemon is connected to the worker (new or adopted): route the
   * session's connections to it. */
  virtual void proxy_connected (SessionProxy *p) = 0;
};

struct SessionProxy {
  ProxyHost *host = nullptr;
  /* Trusted: set by the daemon, or read from the session record. */
  int id = 0;
  std::string token_name, user;
  uid_t uid = 0;
  guint port = 0;
  std::string route;            /* connection-ID prefix, 8 hex digits: the seat's router hands its connections over */
  std::string socket_name;      /* the Wayland socket's name */
  std::string socket_path;      /* ... and where it is, once known */
  std::string runtime_dir, seat_runtime;
  std::string certificate_name; /* the session certificate's common name */
  pid_t starter = 0, worker = 0;
  bool own_child = false;       /* started by this daemon: its exit is ours to reap */
  bool adopted = false;
  gint64 adopted_us = 0;        /* when this daemon adopted it */

  /* Reported by the worker (untrusted, sanitized). */
  bool ready = false, attached = false;
  std::string client;
  int width = 0, height = 0, app_pid = 0;
  guint64 frames = 0, attaches = 0;
  gint64 uptime_s = 0;
  std::string stats_text, ended_reason;
  gint64 detached_since_us = 0;

  /* A welcome waiting for the worker to listen. */
  GstStructure *welcome = nullptr;
  guint64 welcome_conn = 0;     /* the front-door connection to answer on */
  std::string welcome_proof, welcome_who, welcome_video;
  Keymap welcome_keymap;
  ClientScreen welcome_screen;

  ~SessionProxy ();

  /* Starts the session's starter (`wayrayd --session-starter`) with @start,
   * in the environment @envp. */
  bool spawn (const std::string &exe, gchar **envp, GstStructure *start, GError **error);
  /* Connects to the worker's control socket; sends @first (taking it). */
  bool connect_worker (GstStructure *first, GError **error);
  void send (GstStructure *msg);
  /* @msg with @pass_fd alongside (SCM_RIGHTS); the caller keeps its copy. */
  bool send_fd (GstStructure *msg, int pass_fd);
  /* @video: the video codecs the client decodes ("h264", or empty). */
  void expect (const std::string &proof, const ClientScreen &screen, const std::string &who,
      const std::string &video, const Keymap &keymap);
  /* SIGTERM to the starter, which ends the worker and the PAM session. */
  void terminate ();
  /* One line for `wayrayctl list`. */
  std::string listing () const;

  /* Internal. */
  int starter_fd = -1, fd = -1;
  guint starter_watch = 0, io_watch = 0, child_watch = 0, lost_timer = 0;
  std::string starter_buf, line_buf;
  void on_starter_line (const std::string &line);
  void on_worker_line (const std::string &line);
  void worker_lost ();
  void close_worker ();
};

/* Reads a session record; NULL (with the reason) if it is not one. */
SessionProxy *session_proxy_from_record (const std::string &path, GError **error);

}  // namespace wayray
