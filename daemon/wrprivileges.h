/* What root may still do in wayrayd: the capabilities it keeps.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <glib.h>

#include <string>

namespace wayray {

/* The capabilities wayrayd and its session starters keep, and why:
 *   CAP_SETUID, CAP_SETGID     a session's worker becomes its user
 *   CAP_SETPCAP                dropping the others from the bounding set
 *   CAP_CHOWN                  a session's runtime directory becomes the user's
 *   CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
 *                              cleaning up in /run/user/UID (the user's) and
 *                              PAM modules reading what they need
 *   CAP_KILL                   ending a session's worker (the user's process)
 *   CAP_AUDIT_WRITE, CAP_AUDIT_CONTROL
 *                              PAM's login records (pam_unix, pam_loginuid)
 *   CAP_SYS_RESOURCE           pam_limits setting the user's limits
 *   CAP_NET_BIND_SERVICE       a front-door port below 1024, if configured */
extern const int KEPT_CAPABILITIES[];
extern const size_t N_KEPT_CAPABILITIES;

/* As root: drops every other capability from the bounding set and from the
 * permitted, effective and inheritable sets of this process, so neither it
 * nor anything it starts can regain them. Does nothing for other users. */
bool drop_capabilities (GError **error);

/* The kept set as a bit mask (what /proc/PID/status shows as CapEff). */
guint64 kept_capability_mask ();

}  // namespace wayray
