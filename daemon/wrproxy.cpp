/* The daemon's view of one session.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrproxy.h"

#include "wrstarter.h"
#include "wrworker.h"

#include <gio/gio.h>
#include <glib-unix.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <sstream>

GST_DEBUG_CATEGORY_EXTERN (wayrayd_debug);
#define GST_CAT_DEFAULT wayrayd_debug

namespace wayray {

/* A worker's status carries its statistics: a few kilobytes. Anything much
 * longer is not the protocol. */
constexpr size_t MAX_WORKER_LINE = 256 * 1024;
constexpr size_t MAX_STATS = 64 * 1024;

/* What a worker says goes into listings and logs: printable ASCII only,
 * no spaces (a listing's fields are space-separated), bounded. */
static std::string
word (const gchar *s, size_t max = 128)
{
  std::string out;
  for (; s && *s && out.size () < max; s++)
    out += (*s > ' ' && *s < 127) ? *s : '_';
  return out;
}

static std::string
text (const gchar *s, size_t max)
{
  std::string out;
  for (; s && *s && out.size () < max; s++)
    out += ((*s >= ' ' && *s < 127) || *s == '\n') ? *s : '?';
  return out;
}

SessionProxy::~SessionProxy ()
{
  close_worker ();
  if (starter_watch)
    g_source_remove (starter_watch);
  if (starter_fd >= 0)
    close (starter_fd);
  if (child_watch)
    g_source_remove (child_watch);
  if (lost_timer)
    g_source_remove (lost_timer);
  if (welcome)
    gst_structure_free (welcome);
}

void
SessionProxy::close_worker ()
{
  if (io_watch)
    g_source_remove (io_watch);
  io_watch = 0;
  if (fd >= 0)
    close (fd);
  fd = -1;
  line_buf.clear ();
}

void
SessionProxy::send (GstStructure *msg)
{
  if (fd < 0 || !worker_send (fd, msg))
    GST_WARNING ("session %d: its worker is not listening", id);
  if (fd < 0)
    gst_structure_free (msg);
}

bool
SessionProxy::send_fd (GstStructure *msg, int pass_fd)
{
  if (fd < 0) {
    gst_structure_free (msg);
    return false;
  }
  return worker_send (fd, msg, pass_fd);
}

void
SessionProxy::expect (const std::string &proof, const ClientScreen &screen, const std::string &who,
    const std::string &video, const Keymap &keymap)
{
  GstStructure *msg = gst_structure_new ("expect", "proof", G_TYPE_STRING, proof.c_str (),
      "client", G_TYPE_STRING, who.c_str (), "video-codecs", G_TYPE_STRING,
      video.c_str (), "keymap-layout", G_TYPE_STRING, keymap.layout.c_str (), "keymap-variant", G_TYPE_STRING,
      keymap.variant.c_str (), "keymap-options", G_TYPE_STRING, keymap.options.c_str (), nullptr);
  screen.put (msg);
  send (msg);
}

void
SessionProxy::terminate ()
{
  if (starter > 0)
    kill (starter, SIGTERM);
}

std::string
SessionProxy::listing () const
{
  std::ostringstream o;
  o << id << " token=" << token_name << " user=" << user << " state="
    << (!ready ? "starting" : attached ? "attached" : "detached") << " client=" << (client.empty () ? "-" : client)
    << " size=" << width << "x" << height << " port=" << port << " route=" << (route.empty () ? "-" : route)
    << " socket=" << (socket_path.empty () ? socket_name : socket_path) << " pid=" << app_pid
    << " frames=" << frames << " uptime=" << uptime_s << "s attaches=" << attaches << " worker=" << worker << " starter=" << starter;
  return o.str ();
}

/* ---- Starting ------------------------------------------------------------ */

static gboolean
starter_input (gint, GIOCondition, gpointer data)
{
  SessionProxy *p = static_cast<SessionProxy *> (data);
  bool ok = worker_read_lines (p->starter_fd, p->starter_buf, 64 * 1024,
      [p] (const std::string &line) { p->on_starter_line (line); });
  if (ok)
    return G_SOURCE_CONTINUE;
  /* The starter closes its end once it answered (or died). */
  p->starter_watch = 0;
  close (p->starter_fd);
  p->starter_fd = -1;
  return G_SOURCE_REMOVE;
}

bool
SessionProxy::spawn (const std::string &exe, gchar **envp, GstStructure *start, GError **error)
{
  int sv[2];
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "socketpair: %s", g_strerror (errno));
    gst_structure_free (start);
    return false;
  }
  const gchar *argv[] = { exe.c_str (), "--session-starter=3", nullptr };
  gint source_fds[] = { sv[1] }, target_fds[] = { 3 };
  GPid pid = 0;
  gboolean ok = g_spawn_async_with_pipes_and_fds (nullptr, argv, envp, G_SPAWN_DO_NOT_REAP_CHILD, nullptr,
      nullptr, -1, -1, -1, source_fds, target_fds, 1, &pid, nullptr, nullptr, nullptr, error);
  close (sv[1]);
  if (!ok) {
    close (sv[0]);
    gst_structure_free (start);
    return false;
  }
  starter = pid;
  own_child = true;
  starter_fd = sv[0];
  worker_send (starter_fd, start);
  starter_watch = g_unix_fd_add (starter_fd, (GIOCondition) (G_IO_IN | G_IO_HUP | G_IO_ERR), starter_input, this);
  child_watch = g_child_watch_add (pid, [] (GPid, gint status, gpointer data) {
        SessionProxy *sp = static_cast<SessionProxy *> (data);
        sp->child_watch = 0;
        std::string why = sp->ended_reason;
        if (why.empty ()) {
          if (WIFEXITED (status) && WEXITSTATUS (status) > 128)
            why = std::string ("its worker crashed (") + g_strsignal (WEXITSTATUS (status) - 128) + ")";
          else if (WIFSIGNALED (status))
            why = std::string ("its starter was killed (") + g_strsignal (WTERMSIG (status)) + ")";
          else
            why = "its worker exited with status " + std::to_string (WIFEXITED (status) ? WEXITSTATUS (status) : -1);
        }
        sp->host->proxy_gone (sp, why);
      }, this);
  return true;
}

void
SessionProxy::on_starter_line (const std::string &line)
{
  GstStructure *msg = gst_structure_from_string (line.c_str (), nullptr);
  if (!msg)
    return;
  if (gst_structure_has_name (msg, "failed")) {
    std::string reason = text (gst_structure_get_string (msg, "reason"), 1024);
    ended_reason = "could not start: " + reason;
    host->proxy_failed (this, reason);
  } else if (gst_structure_has_name (msg, "started")) {
    const gchar *dir = gst_structure_get_string (msg, "runtime-dir");
    runtime_dir = dir ? dir : "";
    int pid = 0;
    gst_structure_get_int (msg, "pid", &pid);
    worker = pid;
    socket_path = runtime_dir + "/" + socket_name;
    GError *err = nullptr;
    if (!connect_worker (host->proxy_setup (this), &err)) {
      ended_reason = std::string ("could not reach its worker: ") + err->message;
      host->proxy_failed (this, ended_reason);
      g_error_free (err);
      terminate ();
    }
  }
  gst_structure_free (msg);
}

/* ---- The worker's connection ----------------------------------------------- */

static gboolean
worker_input (gint, GIOCondition, gpointer data)
{
  SessionProxy *p = static_cast<SessionProxy *> (data);
  bool ok = worker_read_lines (p->fd, p->line_buf, MAX_WORKER_LINE,
      [p] (const std::string &line) { p->on_worker_line (line); });
  if (ok)
    return G_SOURCE_CONTINUE;
  bool overflow = p->line_buf.size () > MAX_WORKER_LINE;
  p->io_watch = 0;
  p->close_worker ();
  if (overflow) {
    /* Not the protocol: the session's user is playing with its worker. */
    g_print ("session %d (%s): its worker broke the protocol; ending the session\n", p->id, p->user.c_str ());
    p->ended_reason = "its worker broke the protocol";
    p->terminate ();
  }
  p->worker_lost ();
  return G_SOURCE_REMOVE;
}

bool
SessionProxy::connect_worker (GstStructure *first, GError **error)
{
  std::string path = session_socket_path (seat_runtime, id);
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  g_strlcpy (addr.sun_path, path.c_str (), sizeof addr.sun_path);
  int s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0 || connect (s, (struct sockaddr *) &addr, sizeof addr) != 0) {
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "%s: %s", path.c_str (), g_strerror (errno));
    if (s >= 0)
      close (s);
    gst_structure_free (first);
    return false;
  }
  /* Only the session's own worker listens there (the directory is root's
   * alone), on the socket its starter made: the peer credentials of a
   * listening socket are those of whoever called listen (). */
  struct ucred cred = {};
  socklen_t len = sizeof cred;
  if (getsockopt (s, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != geteuid () || cred.pid != starter) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
        "%s was not made by the session's starter (pid %d, uid %u; expected pid %d)", path.c_str (), (int) cred.pid,
        (unsigned) cred.uid, (int) starter);
    close (s);
    gst_structure_free (first);
    return false;
  }
  close_worker ();
  fd = s;
  io_watch = g_unix_fd_add (fd, (GIOCondition) (G_IO_IN | G_IO_HUP | G_IO_ERR), worker_input, this);
  host->proxy_connected (this);
  send (first);
  return true;
}

void
SessionProxy::on_worker_line (const std::string &line)
{
  GstStructure *msg = gst_structure_from_string (line.c_str (), nullptr);
  if (!msg)
    return;
  if (gst_structure_has_name (msg, "ready")) {
    if (!ready) {
      ready = true;
      host->proxy_ready (this);
    }
  } else if (gst_structure_has_name (msg, "failed")) {
    std::string reason = text (gst_structure_get_string (msg, "reason"), 1024);
    ended_reason = "could not start: " + reason;
    host->proxy_failed (this, reason);
  } else if (gst_structure_has_name (msg, "status")) {
    gboolean a = FALSE;
    int w = 0, h = 0, pid = 0;
    guint64 f = 0, n = 0;
    gint64 up = 0;
    if (gst_structure_get_boolean (msg, "attached", &a) && gst_structure_get_int (msg, "width", &w) &&
        gst_structure_get_int (msg, "height", &h) && gst_structure_get_int (msg, "pid", &pid) &&
        gst_structure_get_uint64 (msg, "frames", &f) && gst_structure_get_uint64 (msg, "attaches", &n) &&
        gst_structure_get_int64 (msg, "uptime", &up)) {
      bool was = attached;
      attached = a;
      width = CLAMP (w, 0, 65535);
      height = CLAMP (h, 0, 65535);
      app_pid = MAX (pid, 0);
      frames = f;
      attaches = n;
      uptime_s = MAX (up, (gint64) 0);
      client = word (gst_structure_get_string (msg, "client"));
      stats_text = text (gst_structure_get_string (msg, "stats"), MAX_STATS);
      if (attached)
        detached_since_us = 0;
      else if (was || !detached_since_us)
        detached_since_us = g_get_monotonic_time ();
      host->proxy_changed (this);
    }
  } else if (gst_structure_has_name (msg, "ended")) {
    ended_reason = text (gst_structure_get_string (msg, "reason"), 256);
  }
  gst_structure_free (msg);
}

/* The worker's connection is gone: the session ended, or (for a session a
 * daemon adopted) the worker may have only closed it. Until its record is
 * gone or its worker answers again, the session stays in the table. */
void
SessionProxy::worker_lost ()
{
  if (own_child || lost_timer)
    return;                     /* the starter's exit tells */
  lost_timer = g_timeout_add (200, [] (gpointer data) -> gboolean {
        SessionProxy *p = static_cast<SessionProxy *> (data);
        std::string record = session_record_path (p->seat_runtime, p->id);
        bool alive = p->starter > 0 && (kill (p->starter, 0) == 0 || errno == EPERM);
        if (!alive || !g_file_test (record.c_str (), G_FILE_TEST_EXISTS)) {
          p->lost_timer = 0;
          p->host->proxy_gone (p, p->ended_reason.empty () ? "its worker ended" : p->ended_reason);
          return G_SOURCE_REMOVE;
        }
        if (p->connect_worker (gst_structure_new_empty ("adopt"), nullptr)) {
          p->lost_timer = 0;
          return G_SOURCE_REMOVE;
        }
        return G_SOURCE_CONTINUE;
      }, this);
}

/* ---- Records ------------------------------------------------------------- */

SessionProxy *
session_proxy_from_record (const std::string &path, GError **error)
{
  gchar *contents = nullptr;
  if (!g_file_get_contents (path.c_str (), &contents, nullptr, error))
    return nullptr;
  g_strstrip (contents);
  GstStructure *rec = gst_structure_from_string (contents, nullptr);
  g_free (contents);
  auto p = std::make_unique<SessionProxy> ();
  int uid = -1, starter = 0, worker = 0;
  const gchar *token = rec ? gst_structure_get_string (rec, "token") : nullptr;
  const gchar *user = rec ? gst_structure_get_string (rec, "user") : nullptr;
  const gchar *sock = rec ? gst_structure_get_string (rec, "socket") : nullptr;
  const gchar *dir = rec ? gst_structure_get_string (rec, "runtime-dir") : nullptr;
  const gchar *cn = rec ? gst_structure_get_string (rec, "certificate-name") : nullptr;
  const gchar *route = rec ? gst_structure_get_string (rec, "route") : nullptr;
  if (!rec || !gst_structure_has_name (rec, "session") || !gst_structure_get_int (rec, "id", &p->id) ||
      !gst_structure_get_int (rec, "uid", &uid) || !gst_structure_get_int (rec, "starter", &starter) ||
      !gst_structure_get_int (rec, "worker", &worker) ||
      !gst_structure_get_uint (rec, "port", &p->port) || !token || !user || !sock || !dir || p->id <= 0 ||
      uid < 0 || starter <= 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s is not a session record", path.c_str ());
    if (rec)
      gst_structure_free (rec);
    return nullptr;
  }
  p->token_name = token;
  p->user = user;
  p->uid = uid;
  p->starter = starter;
  p->worker = worker;
  p->socket_path = sock;
  gchar *base = g_path_get_basename (sock);
  p->socket_name = base;
  g_free (base);
  p->runtime_dir = dir;
  p->certificate_name = cn ? cn : "";
  p->route = route ? route : "";
  p->adopted = true;
  gst_structure_free (rec);
  return p.release ();
}

}  // namespace wayray
