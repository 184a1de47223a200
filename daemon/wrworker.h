/* Session workers: every session runs in a process of its own
 * (`wayrayd --session-worker FD`), as the session's user, started by the
 * session starter (wrstarter.h). A crash or a hang inside one session's
 * pipeline never reaches another session or the daemon, and the worker
 * does not depend on the daemon: FD is a listening socket in the seat's
 * root-only sessions/ directory, and whichever wayrayd connects there
 * manages the session (a restarted daemon adopts it that way).
 *
 * The daemon and a worker talk over that connection, one serialized
 * GstStructure per line:
 *
 *   daemon → worker   setup, id, token, port, socket, width, height, the
 *                     configuration values sessions use, pipeline-path,
 *                     pipeline-text (once, first, by the daemon that
 *                     started the session)
 *                     adopt (a new daemon: answer ready and status)
 *                     expect, proof, width, height, client
 *                     detach, reason
 *                     end, reason
 *                     relay (with a SOCK_SEQPACKET socket as SCM_RIGHTS:
 *                     the session's connections, from the seat's router;
 *                     sent before setup and adopt, and again whenever the
 *                     router changes)
 *   worker → daemon   ready | failed, reason
 *                     status, attached, client, width, height, pid, frames,
 *                     uptime, attaches, stats
 *                     ended, reason
 *
 * The worker runs as the session's user, who can do anything with it: the
 * daemon treats every line from a worker as untrusted input.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

#include <functional>
#include <string>
#include <vector>

namespace wayray {

/* Runs a worker on @fd; returns the process exit code. */
int session_worker_main (int fd);

/* The string field @name of @s, or "" when it has none. */
std::string structure_string (const GstStructure *s, const char *name);

/* One line of the protocol: write @msg (taking it) to @fd, with @pass_fd
 * (when >= 0) alongside as SCM_RIGHTS; the caller keeps its copy. */
bool worker_send (int fd, GstStructure *msg, int pass_fd = -1);

/* Reads what @fd has into @buf and hands each whole line to @on_line;
 * sockets passed alongside go to @fds in order (closed when @fds is NULL).
 * FALSE at the end of the stream, on an error, or when a line grows past
 * @max bytes (a peer that does not speak the protocol). */
bool worker_read_lines (int fd, std::string &buf, size_t max, const std::function<void (const std::string &)> &on_line,
    std::vector<int> *fds = nullptr);

}  // namespace wayray
