/* A session's private directory in its user's runtime directory
 * (`$XDG_RUNTIME_DIR/wayray-KIND-ID/`, mode 0700), and the files the worker
 * writes there: the sound server's (wrsound.h) and the desktop's
 * (wrdesktop.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <string>

namespace wayray {

/* Creates $XDG_RUNTIME_DIR/wayray-@kind-@id (0700) afresh, removing what a
 * session of the same number left behind. Empty with @error on failure. */
std::string make_session_directory (const char *kind, int id, std::string &error);

/* Writes @text to @path (its directories made 0700). */
bool write_session_file (const std::string &path, const std::string &text, std::string &error);

/* Removes @path and everything under it; symbolic links are not followed. */
void remove_tree (const std::string &path);

}  // namespace wayray
