/* Helpers shared by the quic element tests.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <arpa/inet.h>
#include <glib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* A port free for both UDP and TCP right now (the kernel picks it). */
static inline guint
free_port ()
{
  for (int attempt = 0; attempt < 50; attempt++) {
    int u = socket (AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind (u, (sockaddr *) &a, sizeof a) != 0 || getsockname (u, (sockaddr *) &a, &len) != 0) {
      close (u);
      continue;
    }
    int t = socket (AF_INET, SOCK_STREAM, 0);
    bool ok = bind (t, (sockaddr *) &a, sizeof a) == 0;
    close (t);
    close (u);
    if (ok)
      return ntohs (a.sin_port);
  }
  return 0;
}
