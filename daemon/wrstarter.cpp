/* The session starter (see wrstarter.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrstarter.h"

#include "wrworker.h"

#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <security/pam_appl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

extern char **environ;

namespace wayray {

bool
is_worker_variable (const char *name)
{
  static const char *const prefixes[] = { "GST_", "WLR_", "ASAN_OPTIONS=", "UBSAN_OPTIONS=", "LSAN_OPTIONS=",
    "G_DEBUG=", "G_MESSAGES_DEBUG=", "ORC_CODE=" };
  for (const char *p : prefixes) {
    size_t n = strlen (p);
    /* "NAME=" prefixes match a name or an assignment alike. */
    if (p[n - 1] == '=' ? (strncmp (name, p, n - 1) == 0 && (name[n - 1] == '=' || name[n - 1] == '\0'))
                        : strncmp (name, p, n) == 0)
      return true;
  }
  return false;
}

std::string
session_records_dir (const std::string &runtime_dir)
{
  return runtime_dir + "/sessions";
}

std::string
session_record_path (const std::string &runtime_dir, int id)
{
  return session_records_dir (runtime_dir) + "/" + std::to_string (id) + ".session";
}

std::string
session_socket_path (const std::string &runtime_dir, int id)
{
  return session_records_dir (runtime_dir) + "/" + std::to_string (id) + ".sock";
}

namespace {

/* What PAM modules say (errors, information), for the refusal's reason. */
struct Conversation {
  std::string said;
};

int
converse (int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
  Conversation *c = static_cast<Conversation *> (data);
  auto *r = static_cast<struct pam_response *> (calloc (n, sizeof (struct pam_response)));
  if (!r)
    return PAM_BUF_ERR;
  for (int i = 0; i < n; i++) {
    switch (msg[i]->msg_style) {
      case PAM_ERROR_MSG:
      case PAM_TEXT_INFO:
        if (msg[i]->msg && *msg[i]->msg) {
          if (!c->said.empty ())
            c->said += "; ";
          c->said += msg[i]->msg;
        }
        break;
      default:
        /* Nobody is there to answer a prompt: the token was the login. */
        free (r);
        return PAM_CONV_ERR;
    }
  }
  *resp = r;
  return PAM_SUCCESS;
}

struct Starter {
  int fd = -1;
  int id = 0;
  std::string token, user, seat, socket_name, seat_runtime, pam_service, pam_dir, cert_pem, key_pem, cert_name;
  std::string route;
  guint port = 0;
  struct passwd pw = {};
  std::string home, shell;
  bool privileged = false;

  Conversation conv;
  struct pam_conv pam_conv = { converse, &conv };
  pam_handle_t *pamh = nullptr;
  bool pam_session_open = false, pam_cred_set = false;

  std::string runtime_dir;
  bool private_runtime = false;
  std::string socket_path, record_path;
  int listen_fd = -1;
  pid_t worker = 0;

  void fail (const std::string &reason) {
    g_printerr ("session %d (%s): %s\n", id, user.c_str (), reason.c_str ());
    if (fd >= 0)
      worker_send (fd, gst_structure_new ("failed", "reason", G_TYPE_STRING, reason.c_str (), nullptr));
  }

  std::string pam_reason (int rc) {
    std::string r = conv.said.empty () ? pam_strerror (pamh, rc) : conv.said;
    conv.said.clear ();
    return r;
  }

  bool open_pam ();
  void close_pam ();
  bool make_runtime_dir ();
  void remove_runtime_dir ();
  bool make_control_socket ();
  bool write_record ();
  std::vector<std::string> environment ();
  bool fork_worker ();
  void child (int errfd, pid_t starter_pid) G_GNUC_NORETURN;
};

bool
Starter::open_pam ()
{
  int rc = pam_start_confdir (pam_service.c_str (), user.c_str (), &pam_conv,
      pam_dir.empty () ? nullptr : pam_dir.c_str (), &pamh);
  if (rc != PAM_SUCCESS) {
    fail ("PAM could not start for service '" + pam_service + "': " + pam_strerror (pamh, rc));
    pamh = nullptr;
    return false;
  }
  std::string tty = "wayray-" + seat + "-" + std::to_string (id);
  pam_set_item (pamh, PAM_TTY, tty.c_str ());
  pam_set_item (pamh, PAM_RUSER, user.c_str ());
  /* What pam_systemd makes of the session: a graphical user session. */
  pam_putenv (pamh, "XDG_SESSION_TYPE=wayland");
  pam_putenv (pamh, "XDG_SESSION_CLASS=user");
  pam_putenv (pamh, "XDG_SESSION_DESKTOP=wayray");

  rc = pam_acct_mgmt (pamh, PAM_SILENT);
  if (rc != PAM_SUCCESS) {
    fail ("the account '" + user + "' was refused: " + pam_reason (rc));
    return false;
  }
  /* Credentials (pam_group and the like) belong to the user's groups. */
  if (initgroups (user.c_str (), pw.pw_gid) != 0) {
    fail ("initgroups for '" + user + "': " + g_strerror (errno));
    return false;
  }
  rc = pam_setcred (pamh, PAM_ESTABLISH_CRED);
  if (rc != PAM_SUCCESS) {
    fail ("the account '" + user + "' was refused credentials: " + pam_reason (rc));
    return false;
  }
  pam_cred_set = true;
  rc = pam_open_session (pamh, 0);
  if (rc != PAM_SUCCESS) {
    fail ("PAM refused a session for '" + user + "': " + pam_reason (rc));
    return false;
  }
  pam_session_open = true;
  return true;
}

void
Starter::close_pam ()
{
  if (!pamh)
    return;
  int rc = PAM_SUCCESS;
  if (pam_session_open)
    rc = pam_close_session (pamh, 0);
  if (pam_cred_set)
    pam_setcred (pamh, PAM_DELETE_CRED);
  pam_end (pamh, rc);
  pamh = nullptr;
}

/* Removes what is below @dir as the user who owns it (never following a link
 * the user may have planted), then the directory itself. */
static int
remove_entry (const char *path, const struct stat *, int type, struct FTW *ftw)
{
  if (ftw->level == 0)
    return 0;
  if (type == FTW_DP)
    rmdir (path);
  else
    unlink (path);
  return 0;
}

void
Starter::remove_runtime_dir ()
{
  if (runtime_dir.empty ())
    return;
  if (!private_runtime) {
    /* logind's directory: only what this session put there. */
    std::string sock = runtime_dir + "/" + socket_name;
    unlink (sock.c_str ());
    unlink ((sock + ".lock").c_str ());
    unlink ((runtime_dir + "/wayray-session-" + std::to_string (id) + ".crt").c_str ());
    unlink ((runtime_dir + "/wayray-session-" + std::to_string (id) + ".key").c_str ());
    return;
  }
  pid_t pid = fork ();
  if (pid == 0) {
    if (privileged && (setgid (pw.pw_gid) != 0 || setuid (pw.pw_uid) != 0))
      _exit (1);
    nftw (runtime_dir.c_str (), remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    _exit (0);
  }
  if (pid > 0)
    while (waitpid (pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  rmdir (runtime_dir.c_str ());
}

bool
Starter::make_runtime_dir ()
{
  /* logind's /run/user/UID when pam_systemd made one for this user. */
  std::string logind = "/run/user/" + std::to_string (pw.pw_uid);
  struct stat st;
  if (lstat (logind.c_str (), &st) == 0 && S_ISDIR (st.st_mode) && st.st_uid == pw.pw_uid) {
    runtime_dir = logind;
    return true;
  }
  runtime_dir = seat_runtime + "/session-" + std::to_string (id);
  private_runtime = true;
  if (lstat (runtime_dir.c_str (), &st) == 0)
    remove_runtime_dir ();      /* a stale one of a session that crashed */
  if (mkdir (runtime_dir.c_str (), 0700) != 0 ||
      (privileged && chown (runtime_dir.c_str (), pw.pw_uid, pw.pw_gid) != 0)) {
    fail ("cannot make the runtime directory " + runtime_dir + ": " + g_strerror (errno));
    private_runtime = false;
    return false;
  }
  return true;
}

bool
Starter::make_control_socket ()
{
  std::string dir = session_records_dir (seat_runtime);
  if (g_mkdir_with_parents (dir.c_str (), 0700) != 0 || chmod (dir.c_str (), 0700) != 0) {
    fail ("cannot make " + dir + ": " + g_strerror (errno));
    return false;
  }
  socket_path = session_socket_path (seat_runtime, id);
  record_path = session_record_path (seat_runtime, id);
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (socket_path.size () >= sizeof addr.sun_path) {
    fail ("the socket path " + socket_path + " is too long");
    return false;
  }
  strcpy (addr.sun_path, socket_path.c_str ());
  unlink (socket_path.c_str ());
  listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd < 0 || bind (listen_fd, (struct sockaddr *) &addr, sizeof addr) != 0 || listen (listen_fd, 4) != 0) {
    fail ("cannot listen on " + socket_path + ": " + g_strerror (errno));
    return false;
  }
  return true;
}

bool
Starter::write_record ()
{
  GstStructure *rec = gst_structure_new ("session", "id", G_TYPE_INT, id, "token", G_TYPE_STRING, token.c_str (),
      "user", G_TYPE_STRING, user.c_str (), "uid", G_TYPE_INT, (int) pw.pw_uid, "port", G_TYPE_UINT, port,
      "socket", G_TYPE_STRING, (runtime_dir + "/" + socket_name).c_str (),
      "runtime-dir", G_TYPE_STRING, runtime_dir.c_str (), "starter", G_TYPE_INT, (int) getpid (),
      "worker", G_TYPE_INT, (int) worker, "certificate-name", G_TYPE_STRING, cert_name.c_str (),
      "route", G_TYPE_STRING, route.c_str (),
      "created", G_TYPE_INT64, g_get_real_time (), nullptr);
  gchar *text = gst_structure_serialize (rec, GST_SERIALIZE_FLAG_NONE);
  gst_structure_free (rec);
  std::string line = std::string (text) + "\n";
  g_free (text);
  GError *err = nullptr;
  mode_t old = umask (0077);
  gboolean ok = g_file_set_contents (record_path.c_str (), line.data (), line.size (), &err);
  umask (old);
  if (!ok) {
    fail (std::string ("cannot write the session record: ") + err->message);
    g_error_free (err);
  }
  return ok;
}

std::vector<std::string>
Starter::environment ()
{
  /* A login's environment, nothing of the daemon's ... */
  const char *lang = g_getenv ("LANG");
  std::vector<std::string> env = {
    "HOME=" + home,
    "USER=" + user,
    "LOGNAME=" + user,
    "SHELL=" + shell,
    std::string ("PATH=") + (pw.pw_uid == 0 ? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                                           : "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"),
    std::string ("LANG=") + (lang && *lang ? lang : "C.UTF-8"),
    "XDG_RUNTIME_DIR=" + runtime_dir,
    "XDG_SESSION_TYPE=wayland",
    "WAYLAND_DISPLAY=" + socket_name,
  };
  /* ... what the PAM modules set (pam_env, pam_systemd's XDG_SESSION_ID) ... */
  if (pamh) {
    char **pam_env = pam_getenvlist (pamh);
    for (char **e = pam_env; e && *e; e++) {
      const char *eq = strchr (*e, '=');
      if (eq) {
        std::string name (*e, eq - *e);
        for (auto it = env.begin (); it != env.end ();)
          it = it->compare (0, name.size () + 1, name + "=") == 0 ? env.erase (it) : it + 1;
        env.push_back (*e);
      }
      free (*e);
    }
    free (pam_env);
  }
  /* ... and what configures the worker process itself, which the worker
   * keeps from its applications. */
  for (char **e = environ; *e; e++)
    if (is_worker_variable (*e))
      env.push_back (*e);
  return env;
}

void
Starter::child (int errfd, pid_t starter_pid)
{
  auto die = [errfd] (const std::string &why) {
    ssize_t r = write (errfd, why.data (), why.size ());
    (void) r;
    _exit (127);
  };
  signal (SIGTERM, SIG_DFL);
  signal (SIGINT, SIG_DFL);
  signal (SIGHUP, SIG_DFL);
  signal (SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, nullptr);
  if (dup2 (listen_fd, 3) != 3)
    die (std::string ("dup2: ") + g_strerror (errno));
  if (privileged) {
    if (setgid (pw.pw_gid) != 0)
      die ("setgid: " + std::string (g_strerror (errno)));
    if (setuid (pw.pw_uid) != 0)
      die ("setuid: " + std::string (g_strerror (errno)));
    if (pw.pw_uid != 0 && (setuid (0) == 0 || geteuid () == 0))
      die ("could not give up root");
  }
  /* The worker ends with its starter (set after setuid, which clears it):
   * a session whose PAM session is gone is not left behind. */
  prctl (PR_SET_PDEATHSIG, SIGTERM);
  if (getppid () != starter_pid)
    die ("the starter went away");
  if (chdir (home.c_str ()) != 0 && chdir ("/") != 0)
    die ("chdir: " + std::string (g_strerror (errno)));
  /* The session's certificate and key, written as the user into the
   * user's own runtime directory. */
  for (auto [ext, pem] : { std::make_pair (".crt", &cert_pem), std::make_pair (".key", &key_pem) }) {
    std::string path = runtime_dir + "/wayray-session-" + std::to_string (id) + ext;
    unlink (path.c_str ());
    int f = open (path.c_str (), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (f < 0 || write (f, pem->data (), pem->size ()) != (ssize_t) pem->size ())
      die ("cannot write " + path + ": " + g_strerror (errno));
    close (f);
  }
  std::vector<std::string> env = environment ();
  std::vector<char *> envp;
  for (auto &e : env)
    envp.push_back (&e[0]);
  envp.push_back (nullptr);
  gchar *exe = g_file_read_link ("/proc/self/exe", nullptr);
  if (!exe)
    die ("cannot find the wayrayd executable");
  char arg0[] = "wayrayd", arg1[] = "--session-worker=3";
  char *argv[] = { arg0, arg1, nullptr };
  execve (exe, argv, envp.data ());
  die (std::string ("cannot run ") + exe + ": " + g_strerror (errno));
  _exit (127);
}

bool
Starter::fork_worker ()
{
  int errpipe[2];
  if (pipe2 (errpipe, O_CLOEXEC) != 0) {
    fail (std::string ("pipe: ") + g_strerror (errno));
    return false;
  }
  pid_t self = getpid ();
  worker = fork ();
  if (worker < 0) {
    fail (std::string ("fork: ") + g_strerror (errno));
    return false;
  }
  if (worker == 0) {
    close (errpipe[0]);
    close (fd);
    child (errpipe[1], self);
  }
  close (errpipe[1]);
  /* Nothing on the pipe: the worker runs (exec closed it). */
  std::string why;
  char buf[512];
  ssize_t n;
  while ((n = read (errpipe[0], buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      break;
    why.append (buf, n);
  }
  close (errpipe[0]);
  if (!why.empty ()) {
    while (waitpid (worker, nullptr, 0) < 0 && errno == EINTR) {
    }
    worker = 0;
    fail ("the session worker could not start as '" + user + "': " + why);
    return false;
  }
  return true;
}

}  // namespace

int
session_starter_main (int fd)
{
  Starter s;
  s.fd = fd;
  s.privileged = geteuid () == 0;
  signal (SIGPIPE, SIG_IGN);
  /* Its own session: a terminal's Ctrl-C, the daemon's process group and
   * the daemon's end are no longer this session's business. */
  setsid ();

  std::string line;
  GstStructure *start = nullptr;
  char buf[65536];
  while (line.find ('\n') == std::string::npos && line.size () < (1 << 20)) {
    ssize_t n = read (fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    line.append (buf, n);
  }
  if (line.find ('\n') != std::string::npos)
    start = gst_structure_from_string (line.substr (0, line.find ('\n')).c_str (), nullptr);
  if (!start || !gst_structure_has_name (start, "start")) {
    s.fail ("the starter got no start message");
    if (start)
      gst_structure_free (start);
    return 2;
  }
  auto str = [start] (const char *f) { return structure_string (start, f); };
  gst_structure_get_int (start, "id", &s.id);
  gst_structure_get_uint (start, "port", &s.port);
  s.token = str ("token");
  s.route = str ("route");
  s.user = str ("user");
  s.seat = str ("seat");
  s.socket_name = str ("socket");
  s.seat_runtime = str ("runtime-directory");
  s.pam_service = str ("pam-service");
  s.pam_dir = str ("pam-directory");
  s.cert_pem = str ("certificate");
  s.key_pem = str ("private-key");
  s.cert_name = str ("certificate-name");
  gst_structure_free (start);

  struct passwd *pw = getpwnam (s.user.c_str ());
  if (!pw) {
    s.fail ("no account named '" + s.user + "'");
    return 1;
  }
  s.pw = *pw;
  s.home = pw->pw_dir ? pw->pw_dir : "/";
  s.shell = pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh";
  if (!s.privileged && pw->pw_uid != getuid ()) {
    s.fail ("wayrayd does not run as root, so it starts sessions for its own user only, not for '" + s.user + "'");
    return 1;
  }

  /* Signals that would end the starter now end the session properly. */
  sigset_t set;
  sigemptyset (&set);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGHUP);
  sigaddset (&set, SIGCHLD);
  sigprocmask (SIG_BLOCK, &set, nullptr);

  bool ok = (!s.privileged || s.open_pam ()) && s.make_runtime_dir () && s.make_control_socket () &&
      s.fork_worker () && s.write_record ();
  if (!ok) {
    if (s.worker > 0) {
      kill (s.worker, SIGTERM);
      while (waitpid (s.worker, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    if (s.listen_fd >= 0)
      unlink (s.socket_path.c_str ());
    s.remove_runtime_dir ();
    s.close_pam ();
    return 1;
  }
  close (s.listen_fd);
  worker_send (fd, gst_structure_new ("started", "uid", G_TYPE_INT, (int) s.pw.pw_uid, "pid", G_TYPE_INT,
          (int) s.worker, "runtime-dir", G_TYPE_STRING, s.runtime_dir.c_str (), nullptr));
  close (fd);
  s.fd = -1;

  /* Wait for the worker; SIGTERM, SIGINT and SIGHUP are passed on as
   * SIGTERM (the session ends). */
  int status = 0;
  for (;;) {
    int sig = 0;
    if (sigwait (&set, &sig) != 0)
      continue;
    if (sig != SIGCHLD) {
      kill (s.worker, SIGTERM);
      continue;
    }
    pid_t r = waitpid (s.worker, &status, WNOHANG);
    if (r == s.worker)
      break;
    while (waitpid (-1, nullptr, WNOHANG) > 0) {
    }
  }
  unlink (s.record_path.c_str ());
  unlink (s.socket_path.c_str ());
  s.remove_runtime_dir ();
  s.close_pam ();
  if (WIFSIGNALED (status))
    return 128 + WTERMSIG (status);
  return WIFEXITED (status) ? WEXITSTATUS (status) : 1;
}

}  // namespace wayray
