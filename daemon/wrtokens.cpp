/* The token store.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrtokens.h"

#include "wrcardkey.h"

#include <sys/stat.h>

#include <sstream>
#include <vector>

namespace wayray {

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

/* "pubkey:ID:SPKI-HEX": a card's key (wrcardkey.h). */
static bool
parse_public_key (const std::string &field, std::string *id, std::string *spki)
{
  if (field.rfind ("pubkey:", 0) != 0)
    return false;
  size_t colon = field.find (':', 7);
  if (colon == std::string::npos || colon - 7 != 32)
    return false;
  std::string hex = field.substr (colon + 1), der;
  if (hex.empty () || hex.size () > 8192 || !bytes_of_hex (hex, &der))
    return false;
  *id = field.substr (7, 32);
  *spki = der;
  return card_key_id (der) == *id;
}

bool
token_store_find (const std::string &store, const std::string &id, TokenEntry *entry, GError **error)
{
  std::vector<std::string> lines;
  if (!read_lines (store, &lines, error))
    return false;
  for (const std::string &line : lines) {
    if (line.empty () || line[0] == '#')
      continue;
    gchar **f = g_strsplit (line.c_str (), " ", 4);
    ScramVerifier v;
    std::string spki;
    bool match = f[0] && f[1] && f[2] && !id.empty () &&
        (ScramVerifier::parse (f[2], &v) || parse_public_key (f[2], &v.id, &spki)) && scram_equal (v.id, id);
    if (match) {
      entry->name = f[0];
      entry->user = f[1];
      entry->verifier = v;
      entry->card = f[3] && g_strcmp0 (f[3], "card") == 0;
      entry->public_key = spki;
    }
    g_strfreev (f);
    if (match)
      return true;
  }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED, "unknown token");
  return false;
}

std::vector<std::string>
token_store_old_entries (const std::string &store)
{
  std::vector<std::string> lines, old;
  if (!read_lines (store, &lines, nullptr))
    return old;
  for (const std::string &line : lines) {
    if (line.empty () || line[0] == '#')
      continue;
    gchar **f = g_strsplit (line.c_str (), " ", 3);
    const gchar *hashed = f[0] && f[1] ? (f[2] ? f[2] : f[1]) : nullptr;
    if (hashed && g_str_has_prefix (hashed, "sha256:"))
      old.push_back (f[0]);
    g_strfreev (f);
  }
  return old;
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

/* Replaces NAME's line (or adds one) with @credential (a verifier, or a
 * card's public key), whose login id is @id. */
static bool
put_entry (const std::string &store, const std::string &name, const std::string &user, const std::string &id,
    const std::string &credential, bool card, GError **error)
{
  for (auto [what, v] : { std::make_pair (card ? "card name" : "token name", &name),
           std::make_pair ("user name", &user) }) {
    if (!valid_name (*v)) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
          "%s '%s': use 1-64 letters, digits, '-', '_', '.', '@'", what, v->c_str ());
      return false;
    }
  }
  std::vector<std::string> lines;
  if (!read_lines (store, &lines, error))
    return false;
  /* One card, one entry: the same card under two names would make the
   * login find whichever comes first. */
  TokenEntry other;
  if (card && token_store_find (store, id, &other, nullptr) && other.name != name) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "this card is already registered as '%s' (for '%s')",
        other.name.c_str (), other.user.c_str ());
    return false;
  }
  std::vector<std::string> kept;
  for (auto &l : lines)
    if (l.rfind (name + " ", 0) != 0)
      kept.push_back (l);
  kept.push_back (name + " " + user + " " + credential + (card ? " card" : ""));
  return write_lines (store, kept, error);
}

bool
token_store_add (const std::string &store, const std::string &name, const std::string &user, std::string *token,
    GError **error)
{
  /* 192 random bits; the store keeps its login verifier only. */
  *token = scram_random_hex (24);
  return put_entry (store, name, user, token_id (*token), ScramVerifier::make (*token).to_string (), false, error);
}

bool
token_store_add_card (const std::string &store, const std::string &name, const std::string &user,
    const std::string &secret, GError **error)
{
  return put_entry (store, name, user, token_id (secret), ScramVerifier::make (secret).to_string (), true, error);
}

bool
token_store_add_card_key (const std::string &store, const std::string &name, const std::string &user,
    const std::string &spki, GError **error)
{
  std::string id = card_key_id (spki);
  return put_entry (store, name, user, id, "pubkey:" + id + ":" + hex_of (spki), true, error);
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
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no token or card named '%s' in %s", name.c_str (), store.c_str ());
    return false;
  }
  return write_lines (store, kept, error);
}

}  // namespace wayray
