/* The session starter: the one part of a session that starts as root, and
 * only long enough to make the session a login (`wayrayd --session-starter`).
 *
 * wayrayd starts it with a socket pair on a file descriptor and sends one
 * line, a serialized GstStructure:
 *
 *   start, id, token, user, seat, socket (Wayland socket name),
 *          runtime-directory (the seat's), port, pam-service, pam-directory,
 *          certificate, private-key (the session's own, PEM),
 *          certificate-name (its common name, kept in the record)
 *
 * The starter
 *   1. detaches from the daemon (own session and process group), so stopping
 *      or killing wayrayd leaves the session running;
 *   2. opens a PAM session for the user (account check, credentials,
 *      open_session; pam_systemd makes a logind session where logind runs);
 *   3. picks XDG_RUNTIME_DIR: /run/user/UID when it exists and belongs to
 *      the user (logind made it), otherwise a private 0700 directory of the
 *      user's in the seat's runtime directory;
 *   4. writes the session's certificate and key there (0600, the user's);
 *   5. creates the worker's control socket and the session record in the
 *      seat's root-only `sessions/` directory (what a restarted wayrayd
 *      adopts the session from);
 *   6. forks the worker: initgroups, setgid, setuid, chdir $HOME, a login's
 *      environment, exec `wayrayd --session-worker`;
 *   7. answers `started, uid, pid, runtime-dir` (or `failed, reason`) and
 *      closes the socket pair; then waits for the worker, closes the PAM
 *      session, removes what it made, and exits with the worker's status
 *      (128 + signal when it was killed).
 *
 * SIGTERM to the starter ends the session (the worker gets SIGTERM).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

#include <string>

namespace wayray {

/* Runs a starter on @fd; returns the process exit code. */
int session_starter_main (int fd);

/* Environment variables that configure the worker process itself (GStreamer,
 * wlroots, sanitizers), passed from the daemon to the worker but never to
 * the session's applications. */
bool is_worker_variable (const char *name_or_assignment);

/* Where a seat keeps its sessions' records and control sockets. */
std::string session_records_dir (const std::string &runtime_dir);
std::string session_record_path (const std::string &runtime_dir, int id);
std::string session_socket_path (const std::string &runtime_dir, int id);

}  // namespace wayray
