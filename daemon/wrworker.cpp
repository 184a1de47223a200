/* A session worker process.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrworker.h"

#include "wrsession.h"

#include <glib-unix.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

GST_DEBUG_CATEGORY_EXTERN (wayrayd_debug);
#define GST_CAT_DEFAULT wayrayd_debug

namespace wayray {

bool
worker_send (int fd, GstStructure *msg)
{
  gchar *text = gst_structure_serialize (msg, GST_SERIALIZE_FLAG_NONE);
  gst_structure_free (msg);
  std::string line = std::string (text) + "\n";
  g_free (text);
  const char *p = line.data ();
  size_t left = line.size ();
  while (left > 0) {
    ssize_t n = write (fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    p += n;
    left -= n;
  }
  return true;
}

namespace {

class Worker : public SessionHost {
 public:
  int fd;
  GMainLoop *loop = nullptr;
  DaemonConfig cfg;
  PipelineFile file;
  std::unique_ptr<Session> session;
  std::string line_buf;
  guint status_timer = 0;
  int exit_code = 0;

  explicit Worker (int f) : fd (f) {}

  const DaemonConfig &config () override { return cfg; }
  const PipelineFile &server_file () override { return file; }
  Session *find_session (int id) override { return session && session->id == id ? session.get () : nullptr; }

  void session_ended (int id, const std::string &why) override {
    worker_send (fd, gst_structure_new ("ended", "reason", G_TYPE_STRING, why.c_str (), nullptr));
    g_main_loop_quit (loop);
  }

  void session_changed (int id) override { send_status (); }

  void send_status () {
    if (!session)
      return;
    worker_send (fd, gst_structure_new ("status",
            "attached", G_TYPE_BOOLEAN, (gboolean) session->verified.load (),
            "client", G_TYPE_STRING, session->client.c_str (),
            "width", G_TYPE_INT, session->width, "height", G_TYPE_INT, session->height,
            "describe", G_TYPE_STRING, session->describe ().c_str (),
            "stats", G_TYPE_STRING, session->stats ().c_str (), nullptr));
  }

  void setup (const GstStructure *s) {
    auto str = [s] (const char *f) {
      const gchar *v = gst_structure_get_string (s, f);
      return std::string (v ? v : "");
    };
    cfg.seat = str ("seat");
    cfg.session_command = str ("command");
    cfg.keymap_layout = str ("keymap-layout");
    cfg.listen_address = str ("listen-address");
    cfg.certificate_file = str ("certificate-file");
    cfg.private_key_file = str ("private-key-file");
    cfg.video_encoder = str ("video-encoder");
    gst_structure_get_uint (s, "framerate", &cfg.framerate);
    file.path = str ("pipeline-path");
    file.text = str ("pipeline-text");

    session = std::make_unique<Session> ();
    session->host = this;
    gst_structure_get_int (s, "id", &session->id);
    session->token_name = str ("token");
    gst_structure_get_uint (s, "port", &session->port);
    session->socket_name = str ("socket");
    gst_structure_get_int (s, "width", &session->width);
    gst_structure_get_int (s, "height", &session->height);
    GError *err = nullptr;
    if (!session->start (&err)) {
      worker_send (fd, gst_structure_new ("failed", "reason", G_TYPE_STRING, err->message, nullptr));
      g_error_free (err);
      session.reset ();
      exit_code = 1;
      g_main_loop_quit (loop);
      return;
    }
    worker_send (fd, gst_structure_new_empty ("ready"));
    /* Frame counts and transport figures for listings, now and then. */
    status_timer = g_timeout_add_seconds (2, [] (gpointer data) -> gboolean {
          static_cast<Worker *> (data)->send_status ();
          return G_SOURCE_CONTINUE;
        }, this);
    send_status ();
  }

  void handle (const GstStructure *s) {
    const gchar *reason = gst_structure_get_string (s, "reason");
    if (gst_structure_has_name (s, "setup") && !session) {
      setup (s);
    } else if (!session) {
      return;
    } else if (gst_structure_has_name (s, "expect")) {
      const gchar *proof = gst_structure_get_string (s, "proof");
      const gchar *client = gst_structure_get_string (s, "client");
      int w = 0, h = 0;
      gst_structure_get_int (s, "width", &w);
      gst_structure_get_int (s, "height", &h);
      if (proof)
        session->expect (proof, w, h, client ? client : "");
    } else if (gst_structure_has_name (s, "detach")) {
      session->detach (reason ? reason : "detached");
    } else if (gst_structure_has_name (s, "end")) {
      session->send_control (gst_structure_new ("detached", "reason", G_TYPE_STRING,
              reason ? reason : "the session was ended", nullptr));
      worker_send (fd, gst_structure_new ("ended", "reason", G_TYPE_STRING, reason ? reason : "ended", nullptr));
      g_main_loop_quit (loop);
    }
  }

  /* Lines from the daemon; the daemon going away ends the session. */
  static gboolean on_input (gint, GIOCondition cond, gpointer data) {
    Worker *w = static_cast<Worker *> (data);
    char buf[65536];
    ssize_t n = read (w->fd, buf, sizeof buf);
    if (n <= 0) {
      g_main_loop_quit (w->loop);
      return G_SOURCE_REMOVE;
    }
    w->line_buf.append (buf, n);
    size_t nl;
    while ((nl = w->line_buf.find ('\n')) != std::string::npos) {
      std::string line = w->line_buf.substr (0, nl);
      w->line_buf.erase (0, nl + 1);
      GstStructure *s = gst_structure_from_string (line.c_str (), nullptr);
      if (s) {
        w->handle (s);
        gst_structure_free (s);
      }
    }
    return G_SOURCE_CONTINUE;
  }
};

}  // namespace

int
session_worker_main (int fd)
{
  Worker w (fd);
  w.loop = g_main_loop_new (nullptr, FALSE);
  g_unix_fd_add (fd, (GIOCondition) (G_IO_IN | G_IO_HUP | G_IO_ERR), Worker::on_input, &w);
  /* The daemon decides when sessions end; a stray SIGINT from a terminal
   * must not end them behind its back. */
  g_unix_signal_add (SIGINT, [] (gpointer) -> gboolean { return G_SOURCE_CONTINUE; }, nullptr);
  g_unix_signal_add (SIGTERM, [] (gpointer data) -> gboolean {
        g_main_loop_quit (static_cast<GMainLoop *> (data));
        return G_SOURCE_REMOVE;
      }, w.loop);
  g_main_loop_run (w.loop);
  if (w.status_timer)
    g_source_remove (w.status_timer);
  w.session.reset ();
  g_main_loop_unref (w.loop);
  close (fd);
  return w.exit_code;
}

}  // namespace wayray
