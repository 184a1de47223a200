/* What root may still do in wayrayd.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrprivileges.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace wayray {

const int KEPT_CAPABILITIES[] = {
  CAP_SETUID, CAP_SETGID, CAP_SETPCAP, CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_KILL,
  CAP_AUDIT_WRITE, CAP_AUDIT_CONTROL, CAP_SYS_RESOURCE, CAP_NET_BIND_SERVICE,
};
const size_t N_KEPT_CAPABILITIES = G_N_ELEMENTS (KEPT_CAPABILITIES);

guint64
kept_capability_mask ()
{
  guint64 mask = 0;
  for (int c : KEPT_CAPABILITIES)
    mask |= G_GUINT64_CONSTANT (1) << c;
  return mask;
}

static int
last_capability ()
{
  int last = CAP_LAST_CAP;
  FILE *f = fopen ("/proc/sys/kernel/cap_last_cap", "r");
  if (f) {
    if (fscanf (f, "%d", &last) != 1)
      last = CAP_LAST_CAP;
    fclose (f);
  }
  return last;
}

bool
drop_capabilities (GError **error)
{
  if (geteuid () != 0)
    return true;
  guint64 keep = kept_capability_mask ();
  for (int c = 0; c <= last_capability (); c++) {
    if (keep & (G_GUINT64_CONSTANT (1) << c))
      continue;
    if (prctl (PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
          "cannot drop capability %d from the bounding set: %s", c, g_strerror (errno));
      return false;
    }
  }
  /* Only what this process has: a container's root may lack some. */
  struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct data[2] = {};
  if (syscall (SYS_capget, &hdr, data) != 0) {
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "cannot read capabilities: %s",
        g_strerror (errno));
    return false;
  }
  for (int i = 0; i < 2; i++) {
    data[i].effective = data[i].permitted = data[i].permitted & (guint32) (keep >> (32 * i));
    data[i].inheritable = 0;
  }
  if (syscall (SYS_capset, &hdr, data) != 0) {
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "cannot drop capabilities: %s",
        g_strerror (errno));
    return false;
  }
  return true;
}

}  // namespace wayray
