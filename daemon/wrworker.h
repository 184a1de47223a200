/* Session workers: wayrayd runs every session in a process of its own
 * (`wayrayd --session-worker FD`), so a crash or a hang inside one session's
 * pipeline can never reach another session or the daemon.
 *
 * The daemon and a worker talk over a socket pair, one serialized
 * GstStructure per line:
 *
 *   daemon → worker   setup, id, token, port, socket, width, height, the
 *                     configuration values sessions use, pipeline-path,
 *                     pipeline-text (exactly once, first)
 *                     expect, ticket, width, height, client
 *                     detach, reason
 *                     end, reason
 *   worker → daemon   ready | failed, reason
 *                     status, attached, client, width, height, describe, stats
 *                     ended, reason
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

#include <string>

namespace wayray {

/* Runs a worker on @fd; returns the process exit code. */
int session_worker_main (int fd);

/* One line of the protocol: write @msg (taking it) to @fd. */
bool worker_send (int fd, GstStructure *msg);

}  // namespace wayray
