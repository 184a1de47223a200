/* The token store.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrtokens.h"

#include <sys/random.h>
#include <sys/stat.h>

#include <sstream>
#include <vector>

namespace wayray {

static std::string
hex (const guint8 *data, size_t len)
{
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < len; i++) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 15];
  }
  return out;
}

static std::string
hash (const std::string &salt, const std::string &token)
{
  GChecksum *c = g_checksum_new (G_CHECKSUM_SHA256);
  g_checksum_update (c, (const guchar *) salt.data (), salt.size ());
  g_checksum_update (c, (const guchar *) token.data (), token.size ());
  std::string out = g_checksum_get_string (c);
  g_checksum_free (c);
  return out;
}

static bool
read_lines (const std::string &store, std::vector<std::string> *lines, GError **error)
{
  gchar *contents = nullptr;
  GError *err = nullptr;
  if (!g_file_get_contents (store.c_str (), &contents, nullptr, &err)) {
    if (g_error_matches (err, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
      g_error_free (err);
      return true;              /* no store yet: no tokens */
    }
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "token store %s: %s", store.c_str (), err->message);
    g_error_free (err);
    return false;
  }
  std::istringstream in (contents);
  g_free (contents);
  std::string line;
  while (std::getline (in, line))
    lines->push_back (line);
  return true;
}

bool
token_store_verify (const std::string &store, const std::string &token, std::string *name, std::string *user,
    GError **error)
{
  std::vector<std::string> lines;
  if (!read_lines (store, &lines, error))
    return false;
  bool found = false;
  for (const std::string &line : lines) {
    if (line.empty () || line[0] == '#')
      continue;
    gchar **f = g_strsplit (line.c_str (), " ", 3);
    /* NAME USER HASH, or the older NAME HASH. */
    const gchar *account = f[0] && f[1] && f[2] ? f[1] : f[0];
    const gchar *hashed = f[0] && f[1] ? (f[2] ? f[2] : f[1]) : nullptr;
    gchar **h = hashed ? g_strsplit (hashed, ":", 3) : nullptr;
    if (h && h[0] && h[1] && h[2] && g_strcmp0 (h[0], "sha256") == 0) {
      std::string want = h[2], got = hash (h[1], token);
      unsigned char diff = want.size () != got.size ();
      for (size_t i = 0; i < want.size () && i < got.size (); i++)
        diff |= want[i] ^ got[i];
      if (!diff && !found) {
        *name = f[0];
        *user = account;
        found = true;
      }
    }
    g_strfreev (h);
    g_strfreev (f);
  }
  if (!found)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED, "unknown token");
  return found;
}

static bool
write_lines (const std::string &store, const std::vector<std::string> &lines, GError **error)
{
  std::string out;
  for (auto &l : lines)
    out += l + "\n";
  gchar *dir = g_path_get_dirname (store.c_str ());
  g_mkdir_with_parents (dir, 0700);
  g_free (dir);
  mode_t old = umask (0077);
  gboolean ok = g_file_set_contents (store.c_str (), out.data (), out.size (), error);
  umask (old);
  if (ok)
    chmod (store.c_str (), 0600);
  return ok;
}

static bool
valid_name (const std::string &name)
{
  if (name.empty () || name.size () > 64)
    return false;
  for (char c : name)
    if (!g_ascii_isalnum (c) && c != '-' && c != '_' && c != '.' && c != '@')
      return false;
  return true;
}

bool
token_store_add (const std::string &store, const std::string &name, const std::string &user, std::string *token,
    GError **error)
{
  for (auto [what, v] : { std::make_pair ("token name", &name), std::make_pair ("user name", &user) }) {
    if (!valid_name (*v)) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
          "%s '%s': use 1-64 letters, digits, '-', '_', '.', '@'", what, v->c_str ());
      return false;
    }
  }
  std::vector<std::string> lines;
  if (!read_lines (store, &lines, error))
    return false;
  std::vector<std::string> kept;
  for (auto &l : lines)
    if (l.rfind (name + " ", 0) != 0)
      kept.push_back (l);
  guint8 raw[24], salt[16];
  if (getrandom (raw, sizeof raw, 0) != sizeof raw || getrandom (salt, sizeof salt, 0) != sizeof salt) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "no randomness available");
    return false;
  }
  *token = hex (raw, sizeof raw);
  std::string s = hex (salt, sizeof salt);
  kept.push_back (name + " " + user + " sha256:" + s + ":" + hash (s, *token));
  return write_lines (store, kept, error);
}

bool
token_store_remove (const std::string &store, const std::string &name, GError **error)
{
  std::vector<std::string> lines, kept;
  if (!read_lines (store, &lines, error))
    return false;
  for (auto &l : lines)
    if (l.rfind (name + " ", 0) != 0)
      kept.push_back (l);
  if (kept.size () == lines.size ()) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no token named '%s' in %s", name.c_str (), store.c_str ());
    return false;
  }
  return write_lines (store, kept, error);
}

}  // namespace wayray
