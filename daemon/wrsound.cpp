/* The session's sound server (see wrsound.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrsound.h"

#include "wrsessiondir.h"
#include "wrstarter.h"

#include <glib.h>
#include <glib/gstdio.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char **environ;

namespace wayray {

namespace {

const char *const kPrograms[] = { "dbus-daemon", "pipewire", "wireplumber", "pipewire-pulse" };

/* The speakers, and a 10 ms quantum: the default (1024
 * samples, 21 ms) would be most of the latency budget. */
const char *const kPipeWireConf = R"(# Written by wayrayd for this session (docs/audio.md).
context.properties = {
    default.clock.rate = 48000
    default.clock.quantum = 480
    default.clock.min-quantum = 240
}
context.objects = [
    { factory = adapter
      args = {
          factory.name = support.null-audio-sink
          node.name = wayray-speakers
          node.description = "WayRay speakers"
          media.class = Audio/Sink
          audio.position = [ FL FR ]
          priority.session = 2000
          object.linger = true
      }
    }
]
)";

/* The session manager opens none of the server's devices. */
const char *const kWirePlumberMain = R"(-- Written by wayrayd for this session (docs/audio.md).
alsa_monitor.enabled = false
v4l2_monitor.enabled = false
libcamera_monitor.enabled = false
)";
const char *const kWirePlumberBluetooth = R"(-- Written by wayrayd for this session (docs/audio.md).
bluez_monitor.enabled = false
)";

bool
wait_for_sockets (const std::vector<std::string> &paths, gint64 deadline_us)
{
  for (;;) {
    bool all = true;
    for (const std::string &p : paths) {
      struct stat st;
      if (stat (p.c_str (), &st) != 0 || !S_ISSOCK (st.st_mode))
        all = false;
    }
    if (all)
      return true;
    if (g_get_monotonic_time () >= deadline_us)
      return false;
    g_usleep (5000);
  }
}

}  // namespace

std::string
sound_programs_missing ()
{
  std::string missing;
  for (const char *p : kPrograms) {
    gchar *found = g_find_program_in_path (p);
    if (!found)
      missing += (missing.empty () ? "" : ", ") + std::string (p);
    g_free (found);
  }
  return missing;
}

std::vector<std::string>
SoundServer::environment () const
{
  return {
    "PIPEWIRE_RUNTIME_DIR=" + dir_,
    "PULSE_RUNTIME_PATH=" + dir_ + "/pulse",
    "PULSE_SERVER=unix:" + dir_ + "/pulse/native",
    "DBUS_SESSION_BUS_ADDRESS=unix:path=" + dir_ + "/bus",
  };
}

void
SoundServer::export_environment () const
{
  for (const std::string &e : environment ()) {
    size_t eq = e.find ('=');
    g_setenv (e.substr (0, eq).c_str (), e.c_str () + eq + 1, TRUE);
  }
  g_unsetenv ("PIPEWIRE_REMOTE");
}

bool
SoundServer::write_config (std::string &error)
{
  const std::string conf = dir_ + "/config";
  return write_session_file (conf + "/pipewire/pipewire.conf.d/50-wayray.conf", kPipeWireConf, error) &&
      write_session_file (conf + "/wireplumber/main.lua.d/60-wayray.lua", kWirePlumberMain, error) &&
      write_session_file (conf + "/wireplumber/bluetooth.lua.d/60-wayray.lua", kWirePlumberBluetooth, error);
}

pid_t
SoundServer::spawn (const std::vector<std::string> &argv, const std::vector<std::string> &extra_env,
    std::string &error)
{
  /* Everything the child needs is made before fork: only async-signal-safe
   * calls between fork and exec. */
  std::vector<std::string> env;
  for (char **e = environ; *e; e++) {
    if (is_worker_variable (*e))
      continue;
    bool replaced = false;
    for (const std::string &x : extra_env) {
      size_t eq = x.find ('=');
      if (strncmp (*e, x.c_str (), eq + 1) == 0)
        replaced = true;
    }
    if (!replaced && strncmp (*e, "PIPEWIRE_REMOTE=", 16) != 0)
      env.push_back (*e);
  }
  env.insert (env.end (), extra_env.begin (), extra_env.end ());
  std::vector<char *> envp, args;
  for (std::string &e : env)
    envp.push_back (&e[0]);
  envp.push_back (nullptr);
  std::vector<std::string> argv_copy = argv;
  for (std::string &a : argv_copy)
    args.push_back (&a[0]);
  args.push_back (nullptr);
  gchar *exe = g_find_program_in_path (argv[0].c_str ());
  if (!exe) {
    error = argv[0] + " is not installed";
    return -1;
  }
  const std::string log = dir_ + "/sound.log";
  int logfd = open (log.c_str (), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  int nullfd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t parent = getpid ();
  pid_t pid = fork ();
  if (pid == 0) {
    /* The daemons end with the session's worker, however it ends. */
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != parent)
      _exit (127);
    setpgid (0, 0);
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, nullptr);
    for (int s : { SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD })
      signal (s, SIG_DFL);
    if (nullfd >= 0)
      dup2 (nullfd, 0);
    if (logfd >= 0) {
      dup2 (logfd, 1);
      dup2 (logfd, 2);
    }
    close_range (3, ~0U, 0);
    execve (exe, args.data (), envp.data ());
    _exit (127);
  }
  int saved = errno;
  g_free (exe);
  if (logfd >= 0)
    close (logfd);
  if (nullfd >= 0)
    close (nullfd);
  if (pid < 0) {
    error = "fork: " + std::string (g_strerror (saved));
    return -1;
  }
  children_.push_back (pid);
  return pid;
}

bool
SoundServer::start (int id, int timeout_ms, std::string &error)
{
  std::string missing = sound_programs_missing ();
  if (!missing.empty ()) {
    error = "not installed: " + missing;
    return false;
  }
  dir_ = make_session_directory ("sound", id, error);
  if (dir_.empty ())
    return false;
  if (!write_config (error)) {
    stop ();
    return false;
  }
  std::vector<std::string> env = environment ();
  env.push_back ("XDG_CONFIG_HOME=" + dir_ + "/config");
  const gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  const std::string bus = dir_ + "/bus", pw = dir_ + "/pipewire-0", pulse = dir_ + "/pulse/native";
  bool ok = spawn ({ "dbus-daemon", "--session", "--nofork", "--nopidfile", "--address=unix:path=" + bus }, env,
                error) > 0 &&
      spawn ({ "pipewire" }, env, error) > 0;
  if (ok && !wait_for_sockets ({ bus, pw }, deadline)) {
    error = "the session bus or PipeWire did not start within " + std::to_string (timeout_ms) + " ms (see " +
        dir_ + "/sound.log)";
    ok = false;
  }
  ok = ok && spawn ({ "wireplumber" }, env, error) > 0 && spawn ({ "pipewire-pulse" }, env, error) > 0;
  if (ok && !wait_for_sockets ({ pulse }, deadline)) {
    error = "pipewire-pulse did not start within " + std::to_string (timeout_ms) + " ms (see " + dir_ +
        "/sound.log)";
    ok = false;
  }
  if (!ok) {
    std::string log;
    gchar *text = nullptr;
    if (g_file_get_contents ((dir_ + "/sound.log").c_str (), &text, nullptr, nullptr) && text && *text) {
      log = text;
      if (log.size () > 400)
        log = "..." + log.substr (log.size () - 400);
      error += ": " + log;
    }
    g_free (text);
    stop ();
  }
  return ok;
}

void
SoundServer::stop ()
{
  for (pid_t p : children_)
    kill (p, SIGTERM);
  const gint64 deadline = g_get_monotonic_time () + G_USEC_PER_SEC;
  for (pid_t p : children_) {
    for (;;) {
      pid_t r = waitpid (p, nullptr, WNOHANG);
      if (r == p || (r < 0 && errno != EINTR))
        break;
      if (g_get_monotonic_time () >= deadline) {
        kill (p, SIGKILL);
        waitpid (p, nullptr, 0);
        break;
      }
      g_usleep (5000);
    }
  }
  children_.clear ();
  if (!dir_.empty ())
    remove_tree (dir_);
  dir_.clear ();
}

}  // namespace wayray
