/* A session worker process.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrworker.h"

#include "wrsession.h"
#include "wrdesktop.h"
#include "wrsound.h"
#include "wrstarter.h"

#include <glib-unix.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

GST_DEBUG_CATEGORY_EXTERN (wayrayd_debug);
#define GST_CAT_DEFAULT wayrayd_debug

namespace wayray {

std::string
structure_string (const GstStructure *s, const char *name)
{
  const gchar *v = gst_structure_get_string (s, name);
  return v ? v : "";
}

bool
worker_send (int fd, GstStructure *msg, int pass_fd)
{
  gchar *text = gst_structure_serialize (msg, GST_SERIALIZE_FLAG_NONE);
  gst_structure_free (msg);
  std::string line = std::string (text) + "\n";
  g_free (text);
  const char *p = line.data ();
  size_t left = line.size ();
  while (left > 0) {
    struct iovec iov { (void *) p, left };
    struct msghdr mh {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas (struct cmsghdr) char cbuf[CMSG_SPACE (sizeof (int))];
    if (pass_fd >= 0) {
      /* The socket rides with the line's first byte. */
      mh.msg_control = cbuf;
      mh.msg_controllen = sizeof cbuf;
      struct cmsghdr *cm = CMSG_FIRSTHDR (&mh);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN (sizeof (int));
      memcpy (CMSG_DATA (cm), &pass_fd, sizeof pass_fd);
    }
    ssize_t n = sendmsg (fd, &mh, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    pass_fd = -1;
    p += n;
    left -= n;
  }
  return true;
}

bool
worker_read_lines (int fd, std::string &buf, size_t max, const std::function<void (const std::string &)> &on_line,
    std::vector<int> *fds)
{
  char chunk[65536];
  struct iovec iov { chunk, sizeof chunk };
  struct msghdr mh {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas (struct cmsghdr) char cbuf[CMSG_SPACE (sizeof (int) * 8)];
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof cbuf;
  ssize_t n = recvmsg (fd, &mh, MSG_CMSG_CLOEXEC);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return true;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR (&mh); n > 0 && cm; cm = CMSG_NXTHDR (&mh, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
      for (size_t k = 0; k < (cm->cmsg_len - CMSG_LEN (0)) / sizeof (int); k++) {
        int passed;
        memcpy (&passed, CMSG_DATA (cm) + k * sizeof (int), sizeof passed);
        if (fds && fds->size () < 16)
          fds->push_back (passed);
        else
          close (passed);
      }
  if (n <= 0)
    return false;
  buf.append (chunk, n);
  size_t nl;
  while ((nl = buf.find ('\n')) != std::string::npos) {
    std::string line = buf.substr (0, nl);
    buf.erase (0, nl + 1);
    on_line (line);
  }
  return buf.size () <= max;
}

namespace {

/* What the daemon sends a worker stays small but for the pipeline text. */
constexpr size_t MAX_DAEMON_LINE = 4 << 20;

class Worker : public SessionHost {
 public:
  int listen_fd;
  int fd = -1;                  /* the managing daemon's connection, if any */
  guint fd_watch = 0;
  guint setup_timer = 0;
  GMainLoop *loop = nullptr;
  DaemonConfig cfg;
  PipelineFile file;
  std::unique_ptr<Session> session;
  std::string line_buf;
  std::vector<int> passed;      /* sockets that came with the daemon's lines, in order */
  int relay_fd = -1;            /* the router's relay, until the session takes it */
  guint status_timer = 0;
  int exit_code = 0;
  bool ending = false;          /* told to end; waiting for the client to go */
  int pid_polls = 0;
  SoundServer sound;            /* the session's own, when [session] sound */
  Desktop desktop;              /* the nested desktop's files, when one runs */
  Keymap desktop_keymap;        /* what the desktop is to be told */
  int desktop_scale = 1;
  int desktop_outputs = 1;
  ClientScreen setup_screen;    /* the first client's, for the desktop's start */
  guint keymap_timer = 0;
  int keymap_tries = 0;

  explicit Worker (int f) : listen_fd (f) {}

  void send (GstStructure *msg) {
    if (fd >= 0)
      worker_send (fd, msg);
    else
      gst_structure_free (msg);
  }

  const DaemonConfig &config () override { return cfg; }
  const PipelineFile &server_file () override { return file; }
  Session *find_session (int id) override { return session && session->id == id ? session.get () : nullptr; }

  void session_ended (int id, const std::string &why) override {
    const std::string last = desktop.log_tail (1500);
    if (!last.empty ())
      g_printerr ("session %d: the end of %s's log:\n%s\n", id, cfg.desktop.c_str (), last.c_str ());
    send (gst_structure_new ("ended", "reason", G_TYPE_STRING, why.c_str (), nullptr));
    g_main_loop_quit (loop);
  }

  void desktop_changed (int id, const Keymap &keymap, int scale, int outputs) override {
    desktop_keymap = keymap;
    desktop_scale = scale;
    desktop_outputs = outputs;
    keymap_tries = 0;
    if (!keymap_timer && !tell_desktop_keymap ())
      keymap_timer = g_timeout_add (100, [] (gpointer data) -> gboolean {
            Worker *w = static_cast<Worker *> (data);
            if (w->tell_desktop_keymap ()) {
              w->keymap_timer = 0;
              return G_SOURCE_REMOVE;
            }
            return G_SOURCE_CONTINUE;
          }, this);
  }

  /* Whether the desktop has been told (or never will be): a desktop that
   * has not started yet is asked again, for 15 s. */
  bool tell_desktop_keymap () {
    int pid = 0;
    if (session)
      g_object_get (session->src, "exec-pid", &pid, nullptr);
    std::string why;
    Desktop::Told told = desktop.configure (desktop_keymap, desktop_scale, desktop_outputs, pid, why);
    if (told == Desktop::Told::NotYet && ++keymap_tries < 150)
      return false;
    if (told != Desktop::Told::Done)
      g_printerr ("session %d: the desktop keeps its keymap and scale: %s\n", session ? session->id : 0,
          told == Desktop::Told::NotYet ? "it did not start within 15 s" : why.c_str ());
    return true;
  }

  void session_changed (int id) override {
    send_status ();
    if (ending && !session->peer_up)
      g_main_loop_quit (loop);
  }

  void send_status () {
    if (!session || fd < 0)
      return;
    int pid = 0;
    guint64 frames = 0;
    g_object_get (session->src, "exec-pid", &pid, "frames-pushed", &frames, nullptr);
    send (gst_structure_new ("status",
            "attached", G_TYPE_BOOLEAN, (gboolean) session->verified.load (),
            "client", G_TYPE_STRING, session->client.c_str (),
            "width", G_TYPE_INT, session->width, "height", G_TYPE_INT, session->height,
            "pid", G_TYPE_INT, pid, "frames", G_TYPE_UINT64, frames,
            "uptime", G_TYPE_INT64, (g_get_monotonic_time () - session->created_us) / G_USEC_PER_SEC,
            "attaches", G_TYPE_UINT64, session->attaches,
            "stats", G_TYPE_STRING, session->stats ().c_str (), nullptr));
  }

  void setup (const GstStructure *s) {
    auto str = [s] (const char *f) { return structure_string (s, f); };
    cfg.seat = str ("seat");
    cfg.session_command = str ("command");
    cfg.keymap_layout = str ("keymap-layout");
    cfg.keymap_variant = str ("keymap-variant");
    cfg.keymap_options = str ("keymap-options");
    cfg.desktop = str ("desktop");
    cfg.desktop_config = str ("desktop-config");
    cfg.listen_address = str ("listen-address");
    cfg.certificate_file = str ("certificate-file");
    cfg.private_key_file = str ("private-key-file");
    cfg.video_encoder = str ("video-encoder");
    cfg.video_chroma = str ("video-chroma");
    gboolean with_sound = TRUE;
    gst_structure_get_boolean (s, "sound", &with_sound);
    cfg.sound = with_sound;
    gst_structure_get_uint (s, "audio-bitrate", &cfg.audio_bitrate);
    gst_structure_get_uint (s, "framerate", &cfg.framerate);
    file.path = str ("pipeline-path");
    file.text = str ("pipeline-text");

    session = std::make_unique<Session> ();
    session->host = this;
    gst_structure_get_int (s, "id", &session->id);
    setup_screen = ClientScreen::take (s, 1920, 1080);
    /* The session's sound server first: its applications and the
     * pipeline's PipeWire elements find it through the environment. */
    if (cfg.sound) {
      std::string why;
      if (sound.start (session->id, 5000, why)) {
        sound.export_environment ();
        session->sound = true;
      } else {
        g_printerr ("session %d: no sound: %s\n", session->id, why.c_str ());
      }
    }
    /* The applications get the login's environment the starter made (and
     * the sound server's addresses), less what configures this process. */
    gchar **env = g_get_environ ();
    for (gchar **e = env; *e; e++)
      if (!is_worker_variable (*e))
        session->app_env.push_back (*e);
    g_strfreev (env);
    session->token_name = str ("token");
    session->route = str ("route");
    session->relay_fd = relay_fd;
    relay_fd = -1;
    gst_structure_get_uint (s, "port", &session->port);
    session->socket_name = str ("socket");
    session->width = setup_screen.width;
    session->height = setup_screen.height;
    session->first_video = str ("client-video");
    /* The pipeline file starts wayraysrc with ${KEYMAP_LAYOUT} alone. */
    session->default_keymap = Keymap { cfg.keymap_layout, cfg.keymap_variant, cfg.keymap_options };
    session->keymap = Keymap { cfg.keymap_layout, "", "" };
    prepare_desktop ();
    if (session->screen_by != Session::ScreenBy::Fixed)
      session->monitors = setup_screen.monitors;
    GError *err = nullptr;
    if (!session->start (&err)) {
      send (gst_structure_new ("failed", "reason", G_TYPE_STRING, err->message, nullptr));
      g_error_free (err);
      session.reset ();
      exit_code = 1;
      g_main_loop_quit (loop);
      return;
    }
    send (gst_structure_new_empty ("ready"));
    /* Frame counts and transport figures for listings, now and then. */
    status_timer = g_timeout_add_seconds (2, [] (gpointer data) -> gboolean {
          static_cast<Worker *> (data)->send_status ();
          return G_SOURCE_CONTINUE;
        }, this);
    send_status ();
    /* The session command starts once the output is negotiated: tell its
     * pid as soon as it runs, not at the next round. */
    g_timeout_add (50, [] (gpointer data) -> gboolean {
          Worker *w = static_cast<Worker *> (data);
          int pid = 0;
          if (w->session)
            g_object_get (w->session->src, "exec-pid", &pid, nullptr);
          if (!w->session || pid == 0)
            return w->session && ++w->pid_polls < 200 ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
          w->send_status ();
          return G_SOURCE_REMOVE;
        }, this);
  }

  /* What wayraysrc runs: the session command itself (kiosk), or the
   * nested desktop that starts it. A desktop that is not installed or
   * cannot be prepared leaves the session in the kiosk policy. */
  void prepare_desktop () {
    DesktopSetup setup;
    if (!parse_desktop (cfg.desktop, &setup.kind))
      setup.kind = DesktopKind::Kiosk;
    setup.id = session->id;
    setup.seat = cfg.seat;
    setup.command = cfg.session_command;
    setup.keymap = Keymap { cfg.keymap_layout, cfg.keymap_variant, cfg.keymap_options };
    setup.scale = setup_screen.scale;
    setup.outputs = setup_screen.outputs ();
    const char *xdg = g_getenv ("XDG_RUNTIME_DIR");
    if (xdg && !session->socket_name.empty ())
      setup.parent_socket = std::string (xdg) + "/" + session->socket_name;
    setup.config_file = cfg.desktop_config;
    std::string why = desktop_programs_missing (setup.kind);
    if (!why.empty ())
      why = "not installed: " + why;
    else if (setup.kind == DesktopKind::Sway && getuid () == 0)
      why = "sway refuses to run as root";
    std::string exec;
    if (why.empty () && desktop.prepare (setup, exec, why)) {
      cfg.session_command = exec;
      session->xwayland = setup.kind == DesktopKind::Kiosk;
      session->screen_by = setup.kind == DesktopKind::Weston ? Session::ScreenBy::Fixed
          : setup.kind == DesktopKind::Sway ? Session::ScreenBy::Desktop : Session::ScreenBy::Compositor;
      return;
    }
    g_printerr ("session %d: the kiosk policy instead of desktop %s: %s\n", session->id, cfg.desktop.c_str (),
        why.c_str ());
    desktop.remove ();
  }

  void handle (const GstStructure *s) {
    const gchar *reason = gst_structure_get_string (s, "reason");
    if (gst_structure_has_name (s, "relay")) {
      take_relay ();
    } else if (gst_structure_has_name (s, "setup") && !session) {
      if (setup_timer)
        g_source_remove (setup_timer);
      setup_timer = 0;
      setup (s);
    } else if (!session) {
      return;
    } else if (gst_structure_has_name (s, "adopt")) {
      send (gst_structure_new_empty ("ready"));
      send_status ();
    } else if (gst_structure_has_name (s, "expect")) {
      const gchar *proof = gst_structure_get_string (s, "proof");
      const gchar *client = gst_structure_get_string (s, "client");
      const gchar *video = gst_structure_get_string (s, "video-codecs");
      Keymap km { structure_string (s, "keymap-layout"), structure_string (s, "keymap-variant"),
        structure_string (s, "keymap-options") };
      if (proof)
        session->expect (proof, ClientScreen::take (s, session->width, session->height), client ? client : "",
            video ? video : "", km.valid () ? km : Keymap ());
    } else if (gst_structure_has_name (s, "detach")) {
      session->detach (reason ? reason : "detached");
    } else if (gst_structure_has_name (s, "end") && !ending) {
      send (gst_structure_new ("ended", "reason", G_TYPE_STRING, reason ? reason : "ended", nullptr));
      if (!session->verified || !session->peer_up) {
        g_main_loop_quit (loop);
        return;
      }
      /* The attached client is told why, and the session ends once it has
       * gone (it closes its connection on the notice), or after a second. */
      session->send_control (gst_structure_new ("detached", "reason", G_TYPE_STRING,
              reason ? reason : "the session was ended", nullptr));
      ending = true;
      g_timeout_add (1000, [] (gpointer data) -> gboolean {
            g_main_loop_quit (static_cast<GMainLoop *> (data));
            return G_SOURCE_REMOVE;
          }, loop);
    }
  }

  /* Lines from the daemon. The daemon going away leaves the session
   * running: the next daemon connects again. */
  static gboolean on_input (gint, GIOCondition, gpointer data) {
    Worker *w = static_cast<Worker *> (data);
    bool ok = worker_read_lines (w->fd, w->line_buf, MAX_DAEMON_LINE, [w] (const std::string &line) {
          GstStructure *s = gst_structure_from_string (line.c_str (), nullptr);
          if (s) {
            w->handle (s);
            gst_structure_free (s);
          }
        }, &w->passed);
    if (ok)
      return G_SOURCE_CONTINUE;
    w->drop_daemon ();
    return G_SOURCE_REMOVE;
  }

  void drop_daemon () {
    if (fd_watch)
      g_source_remove (fd_watch);
    fd_watch = 0;
    if (fd >= 0)
      close (fd);
    fd = -1;
    line_buf.clear ();
    for (int p : passed)
      close (p);
    passed.clear ();
  }

  /* The seat's router hands the session's connections over this socket. */
  void take_relay () {
    if (passed.empty ())
      return;
    int rfd = passed.front ();
    passed.erase (passed.begin ());
    if (session) {
      session->set_relay (rfd);
      close (rfd);
      return;
    }
    if (relay_fd >= 0)
      close (relay_fd);
    relay_fd = rfd;
  }

  /* A daemon connects: only root (or this worker's own user, when the
   * daemon does not run as root) can reach the socket's directory; the
   * newest connection is the one that manages the session. */
  static gboolean on_accept (gint, GIOCondition, gpointer data) {
    Worker *w = static_cast<Worker *> (data);
    int c = accept4 (w->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0)
      return G_SOURCE_CONTINUE;
    struct ucred cred = {};
    socklen_t len = sizeof cred;
    if (getsockopt (c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || (cred.uid != 0 && cred.uid != getuid ())) {
      close (c);
      return G_SOURCE_CONTINUE;
    }
    if (w->fd_watch)
      g_source_remove (w->fd_watch);
    w->fd_watch = 0;
    w->drop_daemon ();
    w->fd = c;
    w->fd_watch = g_unix_fd_add (c, (GIOCondition) (G_IO_IN | G_IO_HUP | G_IO_ERR), on_input, w);
    return G_SOURCE_CONTINUE;
  }
};

}  // namespace

int
session_worker_main (int listen_fd)
{
  Worker w (listen_fd);
  w.loop = g_main_loop_new (nullptr, FALSE);
  guint accept_watch = g_unix_fd_add (listen_fd, G_IO_IN, Worker::on_accept, &w);
  /* A worker whose daemon never said what to run ends by itself. */
  w.setup_timer = g_timeout_add_seconds (30, [] (gpointer data) -> gboolean {
        Worker *wk = static_cast<Worker *> (data);
        wk->setup_timer = 0;
        g_printerr ("session worker: no setup from wayrayd within 30 s; ending\n");
        wk->exit_code = 1;
        g_main_loop_quit (wk->loop);
        return G_SOURCE_REMOVE;
      }, &w);
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
  if (w.setup_timer)
    g_source_remove (w.setup_timer);
  g_source_remove (accept_watch);
  w.session.reset ();
  if (w.keymap_timer)
    g_source_remove (w.keymap_timer);
  w.sound.stop ();
  w.desktop.remove ();
  w.drop_daemon ();
  g_main_loop_unref (w.loop);
  close (listen_fd);
  return w.exit_code;
}

}  // namespace wayray
