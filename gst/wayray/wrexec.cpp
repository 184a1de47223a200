/* The session command: started in a process group of its own with the
 * session's environment, watched through a pidfd, and the whole group ended
 * when the compositor stops.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrcompositorimpl.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace wayray {

/* ---- Exec ------------------------------------------------------------- */

static void
exec_child_setup (gpointer)
{
  /* Its own process group, so stopping ends everything it started; and
   * if this process dies without stopping (a crash), it gets SIGTERM. */
  setpgid (0, 0);
  prctl (PR_SET_PDEATHSIG, SIGTERM);
  signal (SIGPIPE, SIG_DFL);
}

bool
Compositor::Impl::spawn_exec (std::string *err)
{
  GError *error = nullptr;
  gchar **argv = nullptr;
  if (!g_shell_parse_argv (config.exec.c_str (), nullptr, &argv, &error)) {
    *err = std::string ("could not parse exec command: ") + error->message;
    g_error_free (error);
    return false;
  }
  gchar **envp;
  if (config.exec_env.empty ()) {
    envp = g_get_environ ();
  } else {
    envp = g_new0 (gchar *, config.exec_env.size () + 1);
    for (size_t i = 0; i < config.exec_env.size (); i++)
      envp[i] = g_strdup (config.exec_env[i].c_str ());
  }
  envp = g_environ_setenv (envp, "WAYLAND_DISPLAY", socket.c_str (), TRUE);
  /* X11 programs reach the session's own Xwayland, or nothing. */
  if (xwayland && xwayland->display_name)
    envp = g_environ_setenv (envp, "DISPLAY", xwayland->display_name, TRUE);
  else
    envp = g_environ_unsetenv (envp, "DISPLAY");
  envp = g_environ_setenv (envp, "XDG_SESSION_TYPE", "wayland", TRUE);

  gboolean ok = g_spawn_async (nullptr, argv, envp,
      (GSpawnFlags) (G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD), exec_child_setup, nullptr,
      &exec_pid, &error);
  g_strfreev (argv);
  g_strfreev (envp);
  if (!ok) {
    *err = std::string ("could not start '") + config.exec + "': " + error->message;
    g_error_free (error);
    return false;
  }
  GST_INFO_OBJECT (owner, "started '%s' as pid %d", config.exec.c_str (), exec_pid);
  exec_pid_public = exec_pid;

  /* Learn of its exit without a main loop or SIGCHLD handler. */
  exec_pidfd = (int) syscall (SYS_pidfd_open, exec_pid, 0);
  if (exec_pidfd >= 0)
    exec_source = wl_event_loop_add_fd (loop, exec_pidfd, WL_EVENT_READABLE, handle_exec_exit, this);
  return true;
}

int
Compositor::Impl::handle_exec_exit (int fd, uint32_t mask, void *data)
{
  auto self = static_cast<Impl *> (data);
  int status = 0;
  if (waitpid (self->exec_pid, &status, WNOHANG) == self->exec_pid) {
    GPid pid = self->exec_pid;
    self->exec_pid = 0;
    self->exec_pid_public = 0;
    wl_event_source_remove (self->exec_source);
    self->exec_source = nullptr;
    close (self->exec_pidfd);
    self->exec_pidfd = -1;
    if (self->cb.exec_exited)
      self->cb.exec_exited (pid, status);
  }
  return 0;
}

void
Compositor::Impl::end_exec ()
{
  if (exec_source)
    wl_event_source_remove (exec_source);
  exec_source = nullptr;
  if (exec_pidfd >= 0)
    close (exec_pidfd);
  exec_pidfd = -1;
  exec_pid_public = 0;
  if (exec_pid <= 0)
    return;

  /* The clients are already disconnected; most exit on their own. Ask the
   * whole group, then insist; stragglers of the group go last. */
  const GPid group = exec_pid;
  kill (-group, SIGTERM);
  for (int i = 0; i < 200 && exec_pid > 0; i++) {
    if (waitpid (exec_pid, nullptr, WNOHANG) == exec_pid)
      exec_pid = 0;
    else
      g_usleep (10000);
  }
  if (exec_pid > 0) {
    GST_WARNING_OBJECT (owner, "'%s' did not exit on SIGTERM, killing it", config.exec.c_str ());
    kill (-group, SIGKILL);
    waitpid (exec_pid, nullptr, 0);
    exec_pid = 0;
  }
  kill (-group, SIGKILL);
}

}  // namespace wayray
