/* wayrayctl: control a running wayrayd, and manage its token store.
 *
 *   wayrayctl [--seat NAME | --socket PATH] list | detach ID | end ID | stats ID | shutdown
 *   wayrayctl [--seat NAME | --config FILE | --store FILE] token-add NAME [--user USER] | token-remove NAME
 *   wayrayctl [...] card-add NAME [--user USER] [--reader READER | --id ID] [--key | --public-key FILE]
 *   wayrayctl [...] card-remove NAME | card-read [--reader READER]
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wraccounts.h"
#ifdef HAVE_PCSC
#include "wrcard.h"
#endif
#include "wrcardkey.h"
#include "wrdaemon.h"
#include "wrsessioncert.h"
#include "wrtlscert.h"
#include "wrtokens.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <gst/gst.h>

#include <cstring>
#include <string>

using namespace wayray;

/* Sends one command line to wayrayd; the answer (without its closing "ok")
 * in @answer. */
static bool
ask_daemon (const std::string &path, const std::string &line, std::string *answer, GError **error)
{
  GSocketClient *client = g_socket_client_new ();
  GSocketAddress *addr = g_unix_socket_address_new (path.c_str ());
  GSocketConnection *conn = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (addr), nullptr, error);
  g_object_unref (addr);
  g_object_unref (client);
  if (!conn)
    return false;
  std::string out = line + "\n";
  GOutputStream *os = g_io_stream_get_output_stream (G_IO_STREAM (conn));
  g_output_stream_write_all (os, out.data (), out.size (), nullptr, nullptr, nullptr);
  GInputStream *in = g_io_stream_get_input_stream (G_IO_STREAM (conn));
  char buf[4096];
  gssize n;
  while ((n = g_input_stream_read (in, buf, sizeof buf, nullptr, nullptr)) > 0)
    answer->append (buf, n);
  g_object_unref (conn);
  return true;
}

/* The key of the card in @reader (PKCS#11); "" with @why. */
static std::string
key_in_reader (const std::string &reader_wanted, const std::string &module, std::string *label, std::string *why)
{
#ifdef HAVE_PCSC
  /* The reader's full name, as the module's slot describes it. */
  SCARDCONTEXT ctx = 0;
  std::vector<std::string> readers;
  if (SCardEstablishContext (SCARD_SCOPE_SYSTEM, nullptr, nullptr, &ctx) != SCARD_S_SUCCESS) {
    *why = "the smart card service is not reachable (is pcscd running?)";
    return "";
  }
  bool listed = card_readers (ctx, &readers, why);
  SCardReleaseContext (ctx);
  std::string reader = listed ? card_pick_reader (readers, reader_wanted) : "";
  if (listed && reader.empty ())
    *why = readers.empty () ? "there is no smart card reader" : "there is no reader named '" + reader_wanted + "'";
  if (reader.empty ())
    return "";
  Pkcs11 p11;
  CardKey key;
  if (!p11.load (module, why) || !p11.find_key (reader, &key, why))
    return "";
  *label = key.label + (key.rsa ? ", RSA" : ", ECDSA") + (key.needs_pin ? ", PIN" : ", no PIN");
  return key.spki;
#else
  *why = "this wayrayctl was built without smart card support (libpcsclite)";
  return "";
#endif
}

/* card-read: the ID (and key) of the card in a reader; card-add:
 * registers it, or the card whose ID or public key is given. */
static int
card_command (const std::string &cmd, const std::string &name, const std::string &store, const gchar *user,
    const gchar *reader, const gchar *card_id, bool by_key, const gchar *key_file, const std::string &module)
{
  if (cmd == "card-add" && name.empty ()) {
    g_printerr ("wayrayctl: card-add needs a NAME\n");
    return 2;
  }
  std::string account = user ? user : name;
  if (cmd == "card-add" && !account_exists (account)) {
    g_printerr ("wayrayctl: there is no account '%s'; name one with --user USER\n", account.c_str ());
    return 1;
  }
  std::string why, label;
  GError *err = nullptr;
  if (cmd == "card-add" && by_key) {
    std::string spki = key_file ? card_key_spki_from_file (key_file, &why)
                                : key_in_reader (reader ? reader : "", module, &label, &why);
    if (spki.empty ()) {
      g_printerr ("wayrayctl: %s\n", why.c_str ());
      return 1;
    }
    if (!token_store_add_card_key (store, name, account, spki, &err)) {
      g_printerr ("wayrayctl: %s\n", err->message);
      g_error_free (err);
      return 1;
    }
    g_print ("registered the card key %s%s as '%s' for '%s'\n", card_key_id (spki).c_str (),
        label.empty () ? "" : (" (" + label + ")").c_str (), name.c_str (), account.c_str ());
    return 0;
  }
#ifdef HAVE_PCSC
  CardIdentity id;
  std::string used;
  bool have_id;
  if (card_id && cmd == "card-add") {
    if (!card_identity_parse (card_id, &id, &why)) {
      g_printerr ("wayrayctl: %s\n", why.c_str ());
      return 2;
    }
    have_id = true;
  } else {
    have_id = card_read_in_reader (reader ? reader : "", &id, &used, &why);
  }
  if (cmd == "card-read") {
    /* A card with a key says so too (a card without the module's
     * support, or without a key, says nothing more). */
    std::string key_why;
    std::string spki = why.rfind ("there is no", 0) == 0 ? "" : key_in_reader (reader ? reader : "", module, &label,
        &key_why);
    if (have_id)
      g_print ("%s\n", id.to_string ().c_str ());
    if (!spki.empty ())
      g_print ("key %s (%s)\n", card_key_id (spki).c_str (), label.c_str ());
    if (!have_id && spki.empty ()) {
      g_printerr ("wayrayctl: %s\n", why.c_str ());
      return 1;
    }
    return 0;
  }
  if (!have_id) {
    g_printerr ("wayrayctl: %s\n", why.c_str ());
    return 1;
  }
  if (!token_store_add_card (store, name, account, card_secret (id), &err)) {
    g_printerr ("wayrayctl: %s\n", err->message);
    g_error_free (err);
    return 1;
  }
  g_print ("registered card %s as '%s' for '%s'\n", id.to_string ().c_str (), name.c_str (), account.c_str ());
  return 0;
#else
  g_printerr ("wayrayctl: %s: this wayrayctl was built without smart card support (libpcsclite)\n", cmd.c_str ());
  return 1;
#endif
}

int
main (int argc, char **argv)
{
  gchar *seat = nullptr, *socket_path = nullptr, *config = nullptr, *store = nullptr, *user = nullptr,
      *reader = nullptr, *card_id = nullptr, *public_key = nullptr, *module = nullptr;
  gboolean with_key = FALSE;
  GOptionEntry entries[] = {
    {"key", 0, 0, G_OPTION_ARG_NONE, &with_key,
        "card-add: register the card's key (its certificate's public key, through PKCS#11), not its ID", nullptr},
    {"public-key", 0, 0, G_OPTION_ARG_FILENAME, &public_key,
        "card-add: register the card whose certificate or public key (PEM or DER) this file holds", "FILE"},
    {"pkcs11-module", 0, 0, G_OPTION_ARG_FILENAME, &module,
        "The PKCS#11 module for cards with a key (default: OpenSC's opensc-pkcs11.so)", "PATH"},
    {"user", 'u', 0, G_OPTION_ARG_STRING, &user,
        "token-add, card-add: the account the sessions run as (default: NAME)", "USER"},
    {"reader", 'r', 0, G_OPTION_ARG_STRING, &reader,
        "card-add, card-read: the smart card reader (its name or the start of it; default: the first)", "READER"},
    {"id", 0, 0, G_OPTION_ARG_STRING, &card_id, "card-add: the card's ID as card-read printed it, no card needed",
        "ID"},
    {"seat", 's', 0, G_OPTION_ARG_STRING, &seat, "Seat name (default: 'default')", "NAME"},
    {"socket", 0, 0, G_OPTION_ARG_FILENAME, &socket_path, "wayrayd's control socket", "PATH"},
    {"config", 'c', 0, G_OPTION_ARG_FILENAME, &config, "wayrayd's configuration file", "FILE"},
    {"store", 0, 0, G_OPTION_ARG_FILENAME, &store, "Token store file", "FILE"},
    {nullptr},
  };
  GOptionContext *ctx = g_option_context_new ("COMMAND [ARG] - control wayrayd");
  g_option_context_set_description (ctx,
      "Commands:\n"
      "  list               sessions: id, token, user, state, client, size, port, socket, pid, frames\n"
      "  detach ID          drop the session's client; the session keeps running\n"
      "  end ID             end the session and its applications\n"
      "  stats ID           the session's figures and its connection statistics\n"
      "  shutdown           end every session and stop wayrayd (root and admin-group)\n"
      "  token-add NAME [--user USER]\n"
      "                     create (or replace) a token for the account USER (default: NAME);\n"
      "                     prints the token once\n"
      "  token-remove NAME  remove a token and end its session\n"
      "  card-add NAME [--user USER] [--reader READER | --id ID] [--key | --public-key FILE]\n"
      "                     register the card in the reader (or the card whose ID is given) for\n"
      "                     the account USER (default: NAME); --key: the card's key, not its ID\n"
      "  card-read [--reader READER]\n"
      "                     print the ID of the card in the reader, and its key\n"
      "  card-remove NAME   remove a card and end its session\n"
      "  fingerprint        the seat certificate's SHA-256 fingerprint, which clients pin\n"
      "                     (--fingerprint, WAYRAY_FINGERPRINT, wayray.fingerprint= on a\n"
      "                     terminal's kernel command line)\n"
      "\n"
      "Anyone may list, detach, end and read the figures of their own sessions;\n"
      "root and members of the seat's admin-group manage every session.\n");
  g_option_context_add_main_entries (ctx, entries, nullptr);
  GError *err = nullptr;
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || argc < 2) {
    g_printerr ("%s\n", err ? err->message : g_option_context_get_help (ctx, TRUE, nullptr));
    return 2;
  }
  gst_init (nullptr, nullptr);

  std::string cmd = argv[1];
  std::string arg = argc > 2 ? argv[2] : "";
  DaemonConfig cfg;
  if (!load_daemon_config (seat ? seat : "default", config, &cfg, &err)) {
    g_printerr ("wayrayctl: %s\n", err->message);
    return 2;
  }

  std::string path = socket_path ? socket_path : find_control_socket (cfg);
  if (cmd == "fingerprint") {
    /* The seat's certificate, as its front door presents it. */
    std::string file = cfg.certificate_file.empty () ? default_seat_certificate_file () : cfg.certificate_file;
    std::string why;
    std::string fp = wrtls::certificate_file_fingerprint (file, &why);
    if (fp.empty ()) {
      g_printerr ("wayrayctl: %s (wayrayd makes it when it first starts)\n", why.c_str ());
      return 1;
    }
    g_print ("%s\n", fp.c_str ());
    return 0;
  }
  if (cmd == "card-read" || cmd == "card-add")
    return card_command (cmd, arg, store ? store : cfg.token_store, user, reader, card_id,
        with_key || public_key, public_key, module ? module : DEFAULT_PKCS11_MODULE);
  if (cmd == "token-add" || cmd == "token-remove" || cmd == "card-remove") {
    std::string file = store ? store : cfg.token_store;
    if (arg.empty ()) {
      g_printerr ("wayrayctl: %s needs a NAME\n", cmd.c_str ());
      return 2;
    }
    std::string account = user ? user : arg;
    if (cmd == "token-add" && !account_exists (account)) {
      g_printerr ("wayrayctl: there is no account '%s'; name one with --user USER\n", account.c_str ());
      return 1;
    }
    std::string token;
    bool ok = cmd == "token-add" ? token_store_add (file, arg, account, &token, &err)
                                 : token_store_remove (file, arg, &err);
    if (!ok) {
      g_printerr ("wayrayctl: %s\n", err->message);
      return 1;
    }
    if (cmd == "token-add") {
      g_print ("%s\n", token.c_str ());
      return 0;
    }
    /* A removed token's session ends, and its client is told why. */
    std::string answer;
    if (!ask_daemon (path, "revoke " + arg, &answer, &err)) {
      g_printerr ("wayrayctl: token removed; wayrayd is not running at %s, so no session needed ending\n",
          path.c_str ());
      return 0;
    }
    if (answer.rfind ("error:", 0) == 0) {
      g_printerr ("wayrayctl: token removed, but %s", answer.c_str () + 7);
      return 1;
    }
    g_print ("%s", answer.substr (0, answer.rfind ("ok\n")).c_str ());
    return 0;
  }

  std::string line = cmd + (arg.empty () ? "" : " " + arg);
  std::string answer;
  if (!ask_daemon (path, line, &answer, &err)) {
    g_printerr ("wayrayctl: cannot reach wayrayd at %s: %s\n", path.c_str (), err->message);
    return 1;
  }

  int rc = 0;
  if (answer.rfind ("error:", 0) == 0) {
    g_printerr ("wayrayctl: %s", answer.c_str () + 7);
    rc = 1;
  } else {
    /* Everything but the closing "ok". */
    size_t end = answer.rfind ("ok\n");
    g_print ("%s", answer.substr (0, end == std::string::npos ? answer.size () : end).c_str ());
  }
  return rc;
}
