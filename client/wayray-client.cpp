/* wayray-client: the WayRay player.
 *
 * Knocks at a wayrayd front door with a token and its screen size, gets the
 * session's port, a one-time ticket and the server's certificate
 * fingerprint, then runs the client pipeline file on the session port:
 * display in a window (or on a bare console with kmssink, or headless),
 * keyboard and pointer back through the pipeline's navigation events.
 * It reconnects by itself with backoff when the network or server goes
 * away; it stops when the token is refused or another client took the
 * session.
 *
 *   wayray-client HOST[:PORT] [--token TOKEN | --smartcard[=READER]] [--size WxH] [--headless] ...
 *
 * Headless mode reads commands on stdin (type TEXT, key NAME, key-in X Y W H
 * NAME, click X Y, wait-idle MS, snapshot FILE, stats, quit) and reports on
 * stdout; see docs/wayray-client.md. Exit codes: 0 done, 2 usage or broken
 * pipeline file, 3 token refused, 4 detached (another client took the session, or
 * the administrator), 5 the server's certificate changed.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "config.h"
#include "wrcodecs.h"
#include "wrmonitors.h"
#include "wrscram.h"
#include "wrtlscert.h"
#ifdef HAVE_GTK
#include "wrwindow.h"
#endif
#include "wraudio.h"
#include "wrclipboard.h"
#include "wrkeymap.h"
#include "wrechowatch.h"
#include "wrcontrol.h"
#include "wrpipelinefile.h"
#ifdef HAVE_LIBINPUT
#include "wrlibinput.h"
#include <linux/input-event-codes.h>
#endif
#ifdef HAVE_PCSC
#include "wrsmartcard.h"
#endif
#include "wrcardkey.h"

#include <gio/gio.h>
#include <glib-unix.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/navigation.h>
#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>
#include <string>

using namespace wayray;

enum ExitCode { EXIT_OK = 0, EXIT_USAGE = 2, EXIT_REFUSED = 3, EXIT_DETACHED = 4, EXIT_TRUST = 5 };

struct Client {
  /* Options. */
  std::string host;
  guint port = 4433;
  std::string token, name, pipeline_name = "client-session", known_hosts;
  /* --smartcard: the card in the reader is the token (wrcard.h). With no
   * card the screen asks for one; taking it out ends the attachment at
   * once, and a refusal waits for the card to come out. */
  bool smartcard = false;
  std::string reader_wanted;
  bool card_in = false;
  std::string card_reader;
#ifdef HAVE_PCSC
  std::unique_ptr<CardWatcher> cards;
  void watch_cards ();
  void card_arrived (const std::string &reader, bool have_id, const CardIdentity &id, const std::string &why);
#endif
  void look_for_key ();
  void card_login (bool have_key, const std::string &key_why);
  bool key_tried = false;       /* the PKCS#11 module was asked for this card's key */
  std::string card_id_why;      /* why the card has no ID, when it has none */
  /* A card with a key (wrcardkey.h): it signs the login; a PIN, when it
   * wants one, is asked for before the knock. */
  std::string pkcs11_module = DEFAULT_PKCS11_MODULE;
  Pkcs11 p11;
  CardKey card_key;
  bool key_login = false, pin_wanted = false;
  std::string console_pin;      /* the digits typed so far on the console */
  unsigned card_epoch = 0;      /* a card's jobs whose card went are dropped */
  std::atomic<int> card_jobs { 0 };   /* running: the client waits for them at exit */
  void ask_pin (const std::string &text);
  void card_pin (const std::string &pin);
  /* Runs @work on a thread of its own (the card is slow), then @done on
   * the main loop if the card is still the same. */
  void card_job (std::function<void ()> work, std::function<void ()> done);
  /* The seat's certificate fingerprint, given (--fingerprint,
   * WAYRAY_FINGERPRINT, wayray.fingerprint= on the kernel command line):
   * pinned at the front door, so a stateless terminal trusts no first use. */
  std::string pinned;
  std::string transport = "auto";   /* the quic elements' transport: auto, quic or tcp */
  std::string video_decoder = "auto";
  /* The H.264 decoder the session pipeline gets (none when its file has no
   * video path or none is usable): found once, told to the server in the
   * hello, so that a client without one gets everything losslessly. */
  CodecChoice decoder;
  bool decoder_known = false;
  std::string video_profiles;   /* --video-profiles, else the decoder's */
  ClientKeymap keymap;          /* sent in the hello: the session's keyboard layout */
  bool keymap_given = false;    /* --keymap-layout: not the window system's */
  int picture_w = 0, picture_h = 0;  /* the size of the last picture (under lock) */
  int scale = 1;                /* --scale: the screen's scale factor (HiDPI) */
  gint64 resize_sent_us = 0;    /* when "resize" last asked for another size */
  int width = 1920, height = 1080;
  /* The screen's monitors (--size W1xH1,W2xH2): the picture spans them and
   * the session gets one output each; empty: one monitor. */
  wayray::MonitorLayout monitors;
  guint window_poll = 0;        /* the window-size poll, while one runs */
  bool headless = false, console = false, reconnect = true;
  AudioOptions audio;
  WavWriter audio_out;          /* --audio-file */

  GMainLoop *loop = nullptr;
  int exit_code = EXIT_OK;

  /* Front door. */
  GstElement *door = nullptr, *door_out = nullptr, *door_net = nullptr;
  /* The login (wrscram.h): the token never leaves; what was signed and the
   * keys it gave, to check the server's signature and prove the ticket. */
  std::string client_nonce, auth_message;
  ScramKey client_key {}, server_key {};
  bool proved = false;
  guint door_timeout = 0;
  guint admit_timeout = 0;   /* the session must admit us by then, else knock again */
  gint64 knock_us = 0;

  /* Session. */
  GstElement *session = nullptr, *sink = nullptr, *ticket_src = nullptr;
  /* The clipboard with the session (its `clipboard` stream both ways),
   * and, headless, this end's own selections: text or a file's bytes. */
  GstElement *clip_src = nullptr;
  ClipboardLink clip;
  struct LocalSelection {
    std::string type;
    std::string bytes;
  } local_selection[2];
  /* The pipeline file's valves named gate*: open while attached. */
  std::vector<GstElement *> gates;

  /* Window and console: the picture is shown by a pipeline of its own that
   * outlives reconnections (the window stays; the last picture stays in
   * it, with the client's state written over it while detached). */
  GstElement *display = nullptr, *display_src = nullptr, *display_sink = nullptr,
      *status = nullptr;
#ifdef HAVE_GTK
  /* The toolkit window around gtksink (the window client's first
   * choice): clipboard, full screen, status overlay (wrwindow.h). */
  std::unique_ptr<ToolkitWindow> window;
  bool open_window ();
#endif
  guint session_port = 0;
  std::string ticket, fingerprint, certificate_name, nonce;
  std::string route;   /* the session's connection-ID prefix on the seat's port */
  bool attached = false, new_session = false;
  guint backoff_ms = 0, retry_source = 0;
  int display_attempts = 0;

#ifdef HAVE_LIBINPUT
  ConsoleInput console_input;
#endif

  /* Headless frames (streaming thread writes, main thread reads). */
  std::mutex lock;
  GstSample *last = nullptr;
  guint64 frames = 0;
  gint64 last_frame_us = 0;
  bool first_frame_reported = false;
  guint idle_source = 0;
  gint64 idle_wait_ms = 0;
  EchoWatch echo;

  void begin ();
  void knock ();
  const CodecChoice &h264_decoder ();
  void stop_door ();
  void on_answer (GstStructure *msg);
  void answer_challenge (GstStructure *msg);
  void answer_key_challenge (const gchar *snonce, const gchar *binding);
  void start_session ();
  void stop_session ();
  void schedule_reconnect (const std::string &why);
  void finish (int code, const std::string &why);
  bool start_display (GError **err);
  void stop_display ();
  void show_status (const std::string &text);
  void blank_picture ();
  void hold (const std::string &line, const std::string &text);
  void state (const std::string &s) {
    g_print ("%s\n", s.c_str ());
  }
};

static void send_screen_size (Client *c, int w, int h, const wayray::MonitorLayout &monitors = {});

static Client *the_client;

/* How long the session may take to admit a client after its ticket. */
#define ADMIT_TIMEOUT_MS 8000

static bool
connection_message (GstMessage *msg, gboolean *up, std::string *reason)
{
  if (GST_MESSAGE_TYPE (msg) != GST_MESSAGE_ELEMENT)
    return false;
  const GstStructure *st = gst_message_get_structure (msg);
  if (!gst_structure_has_name (st, "wayray-quic-connection"))
    return false;
  gst_structure_get_boolean (st, "connected", up);
  const gchar *r = gst_structure_get_string (st, "reason");
  *reason = r ? r : "";
  return true;
}

/* ---- Front door --------------------------------------------------------- */

void
Client::stop_door ()
{
  if (door_timeout)
    g_source_remove (door_timeout);
  door_timeout = 0;
  if (door) {
    gst_element_set_state (door, GST_STATE_NULL);
    gst_object_unref (door);
    door = nullptr;
  }
  door_out = door_net = nullptr;
}

static gboolean
door_bus (GstBus *bus, GstMessage *msg, gpointer data)
{
  Client *c = static_cast<Client *> (data);
  if (msg->src == nullptr || !c->door)
    return G_SOURCE_REMOVE;
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = nullptr;
    gst_message_parse_error (msg, &err, nullptr);
    std::string m = err->message;
    g_error_free (err);
    /* A changed server certificate is not something to retry. */
    if (m.find ("fingerprint") != std::string::npos || m.find ("certificate") != std::string::npos) {
      c->finish (EXIT_TRUST, "refused the server: " + m);
      return G_SOURCE_REMOVE;
    }
    c->stop_door ();
    c->schedule_reconnect (m);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

const CodecChoice &
Client::h264_decoder ()
{
  if (decoder_known)
    return decoder;
  decoder_known = true;
  std::string path;
  PipelineFile file;
  /* Probing decoders loads their plugins: only for files that use one. */
  if (find_pipeline_file (pipeline_name, "", &path, nullptr) && read_pipeline_file (path, &file, nullptr) &&
      pipeline_uses (file, "H264_DECODER"))
    decoder = pick_h264_decoder (codec_preference (video_decoder));
  /* What the decoder takes, for the server to pick a profile (empty: any). */
  if (video_profiles.empty () && !decoder.factory.empty ())
    for (const std::string &p : h264_profiles_of (decoder.factory, true))
      video_profiles += (video_profiles.empty () ? "" : ",") + p;
  return decoder;
}

/* The window or console comes up first, then the client knocks. A
 * display server that is only just up (a thin client's X or Wayland
 * starting beside this client) may refuse the first tries: the client
 * tries again, 0.2 s apart growing to 1 s, about 17 s in all, then gives
 * up. Signals are served meanwhile. */
void
Client::begin ()
{
  GError *err = nullptr;
  if (start_display (&err)) {
#ifdef HAVE_PCSC
    if (smartcard) {
      watch_cards ();
      return;
    }
#endif
    knock ();
    return;
  }
  /* Only a display server that refuses is worth waiting for. */
  if (++display_attempts == 20 || !g_error_matches (err, GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE)) {
    finish (EXIT_USAGE, err->message);
    g_error_free (err);
    return;
  }
  g_printerr ("wayray-client: %s; trying again\n", err->message);
  g_error_free (err);
  retry_source = g_timeout_add (MIN (display_attempts, 5) * 200, [] (gpointer data) -> gboolean {
        Client *c = static_cast<Client *> (data);
        c->retry_source = 0;
        c->begin ();
        return G_SOURCE_REMOVE;
      }, this);
}

void
Client::knock ()
{
  retry_source = 0;
  if (smartcard && !card_in)
    return;                     /* the card went while a retry waited */
  state ("state connecting " + host + ":" + std::to_string (port));
#ifdef HAVE_GTK
  /* In a window, the layout the window system has now (the user may
   * have changed it since the last login). */
  if (window && !keymap_given) {
    ClientKeymap km = ToolkitWindow::toolkit_keymap ();
    if (!km.layout.empty ())
      keymap = km;
  }
#endif
  door = gst_pipeline_new ("front-door");
  GstElement *out = control_source_new (nullptr);
  GstElement *net = gst_element_factory_make ("quicsink", nullptr);
  GstElement *in = gst_element_factory_make ("quicsrc", nullptr);
  GstElement *answer = control_sink_new (nullptr);
  if (!net || !in) {
    finish (EXIT_USAGE, "the WayRay QUIC elements (quicsrc, quicsink) are not installed");
    return;
  }
  for (GstElement *e : { net, in }) {
    g_object_set (e, "mode", 1 /* client */, "host", host.c_str (), "port", port, nullptr);
    gst_util_set_object_arg (G_OBJECT (e), "transport", transport.c_str ());
    if (!pinned.empty ())
      g_object_set (e, "pinned-fingerprint", pinned.c_str (), nullptr);
    else if (!known_hosts.empty ())
      g_object_set (e, "known-hosts-file", known_hosts.c_str (), nullptr);
  }
  gst_bin_add_many (GST_BIN (door), out, net, in, answer, nullptr);
  door_out = out;
  door_net = net;
  link_to_stream (out, net, "hello");
  g_signal_connect (in, "pad-added", G_CALLBACK (+[] (GstElement *el, GstPad *pad, gpointer data) {
        link_stream_pad (el, pad, "welcome", GST_ELEMENT (data));
      }), answer);
  g_signal_connect (answer, "new-sample", G_CALLBACK (+[] (GstAppSink *s, gpointer data) -> GstFlowReturn {
        GstStructure *msg = control_message_pull (s);
        Client *c = static_cast<Client *> (data);
        run_on_main ([c, msg] {
              if (msg) {
                c->on_answer (msg);
                gst_structure_free (msg);
              }
            });
        return GST_FLOW_OK;
      }), this);
  GstBus *bus = gst_element_get_bus (door);
  gst_bus_add_watch (bus, door_bus, this);
  gst_object_unref (bus);

  gst_element_set_state (door, GST_STATE_PLAYING);
  knock_us = g_get_monotonic_time ();
  gchar *n = g_uuid_string_random ();
  nonce = n;
  g_free (n);
  /* The token stays here: the hello names its id, and the server's
   * challenge is answered with a proof bound to this connection. */
  client_nonce = scram_random_hex (18);
  proved = false;
  GstStructure *hello = gst_structure_new ("hello", "version", G_TYPE_INT, 2, "nonce", G_TYPE_STRING, nonce.c_str (),
      "token-id", G_TYPE_STRING, (key_login ? card_key_id (card_key.spki) : token_id (token)).c_str (),
      "client-nonce", G_TYPE_STRING, client_nonce.c_str (),
      "credential", G_TYPE_STRING, key_login ? "card-key" : smartcard ? "card" : "token",
      "width", G_TYPE_INT, width, "height", G_TYPE_INT, height, "client", G_TYPE_STRING, name.c_str (),
      "video-codecs", G_TYPE_STRING, h264_decoder ().factory.empty () ? "" : "h264",
      "h264-profiles", G_TYPE_STRING, video_profiles.c_str (), nullptr);
  if (scale > 1)
    gst_structure_set (hello, "scale", G_TYPE_INT, scale, nullptr);
  if (monitors.size () > 1)
    gst_structure_set (hello, "monitors", G_TYPE_STRING, wayray::monitor_layout_format (monitors).c_str (), nullptr);
  if (!keymap.layout.empty ())
    gst_structure_set (hello, "keymap-layout", G_TYPE_STRING, keymap.layout.c_str (), "keymap-variant", G_TYPE_STRING,
        keymap.variant.c_str (), "keymap-options", G_TYPE_STRING, keymap.options.c_str (), nullptr);
  control_source_push (out, hello);
  door_timeout = g_timeout_add (10000, [] (gpointer data) -> gboolean {
        Client *c = static_cast<Client *> (data);
        c->door_timeout = 0;
        c->stop_door ();
        c->schedule_reconnect ("no answer from the server");
        return G_SOURCE_REMOVE;
      }, this);
}

void
Client::on_answer (GstStructure *msg)
{
  if (!door)
    return;
  /* Answers to other clients' hellos can reach us; only ours count. A
   * malformed-hello refusal carries no nonce and is not ours either. */
  const gchar *their_nonce = gst_structure_get_string (msg, "nonce");
  if (!their_nonce || nonce != their_nonce)
    return;
  if (gst_structure_has_name (msg, "refused")) {
    const gchar *reason = gst_structure_get_string (msg, "reason");
    stop_door ();
    finish (EXIT_REFUSED, std::string ("refused: ") + (reason ? reason : "no reason given"));
    return;
  }
  if (gst_structure_has_name (msg, "challenge")) {
    answer_challenge (msg);
    return;
  }
  const gchar *t = gst_structure_get_string (msg, "ticket");
  const gchar *fp = gst_structure_get_string (msg, "fingerprint");
  const gchar *sig = gst_structure_get_string (msg, "server-signature");
  guint p = 0;
  gboolean created = FALSE;
  if (!gst_structure_has_name (msg, "welcome") || !t || !fp || !gst_structure_get_uint (msg, "port", &p) || p == 0) {
    stop_door ();
    schedule_reconnect ("the server's answer was malformed");
    return;
  }
  /* Only a server that holds the token's verifier can sign what was
   * exchanged: anyone else answering in its place is refused. */
  if (!proved || (!key_login && (!sig || !scram_equal (sig, scram_server_signature (server_key, auth_message))))) {
    stop_door ();
    finish (EXIT_TRUST, "refused the server: it could not prove it knows the token (its signature of the login "
        "does not verify)");
    return;
  }
  gst_structure_get_boolean (msg, "new-session", &created);
  ticket = t;
  fingerprint = fp;
  /* The session's own certificate (signed by the seat key) is taken only
   * with this name: another session's would not do. */
  const gchar *cn = gst_structure_get_string (msg, "certificate-name");
  certificate_name = cn ? cn : "";
  const gchar *r = gst_structure_get_string (msg, "route");
  route = r ? r : "";
  session_port = p;
  new_session = created;
  stop_door ();
  start_session ();
}

/* The server's challenge: the token's salt and iterations and its nonce.
 * The proof covers both nonces, the salt, the iterations and this TLS
 * connection's exporter value (wrscram.h). */
void
Client::answer_challenge (GstStructure *msg)
{
  const gchar *snonce = gst_structure_get_string (msg, "server-nonce");
  const gchar *salt = gst_structure_get_string (msg, "salt");
  guint iterations = 0;
  gchar *binding = nullptr;
  if (door_net)
    g_signal_emit_by_name (door_net, "channel-binding", (guint64) 0, &binding);
  if (g_strcmp0 (gst_structure_get_string (msg, "kind"), "key") == 0) {
    answer_key_challenge (snonce, binding);
    g_free (binding);
    return;
  }
  std::string why;
  if (proved || !snonce || !salt || !gst_structure_get_uint (msg, "iterations", &iterations) ||
      !g_str_has_prefix (snonce, client_nonce.c_str ()) || strlen (snonce) <= client_nonce.size ())
    why = "the server's challenge was malformed";
  else if (!binding)
    why = "this connection has no TLS exporter value to bind the login to";
  else if (!scram_keys (token, salt, iterations, &client_key, &server_key))
    why = "the server's challenge was malformed (salt or iterations)";
  if (!why.empty ()) {
    g_free (binding);
    stop_door ();
    schedule_reconnect (why);
    return;
  }
  auth_message = scram_auth_message (token_id (token), client_nonce, snonce, salt, iterations, binding);
  g_free (binding);
  proved = true;
  control_source_push (door_out, gst_structure_new ("proof", "nonce", G_TYPE_STRING, nonce.c_str (),
          "server-nonce", G_TYPE_STRING, snonce, "client-proof", G_TYPE_STRING,
          scram_client_proof (client_key, auth_message).c_str (), nullptr));
}

/* A card with a key: its signature of the login (card_key_auth_message),
 * made on the card; the ticket's key comes from it. */
void
Client::answer_key_challenge (const gchar *snonce, const gchar *binding)
{
  std::string why;
  if (!key_login)
    why = "the server wants a card's signature, and this login has no card with a key";
  else if (proved || !snonce || !g_str_has_prefix (snonce, client_nonce.c_str ()) ||
      strlen (snonce) <= client_nonce.size ())
    why = "the server's challenge was malformed";
  else if (!binding)
    why = "this connection has no TLS exporter value to bind the login to";
  if (!why.empty ()) {
    stop_door ();
    schedule_reconnect (why);
    return;
  }
  proved = true;
  auto auth = std::make_shared<std::string> (card_key_auth_message (card_key_id (card_key.spki), client_nonce, snonce,
      binding));
  auto sig = std::make_shared<std::string> ();
  auto err = std::make_shared<std::string> ();
  auto ok = std::make_shared<bool> (false);
  std::string server_nonce = snonce, hello_nonce = nonce;
  CardKey key = card_key;
  card_job ([this, key, auth, sig, err, ok] { *ok = p11.sign (key, *auth, sig.get (), err.get ()); },
      [this, auth, sig, err, ok, server_nonce, hello_nonce] {
        if (!door || nonce != hello_nonce)
          return;               /* that knock is over */
        if (!*ok) {
          stop_door ();
          hold ("state card-held", "Your card did not sign the login:\n" + *err + "\nTake out your card.");
          g_print ("card did not sign: %s\n", err->c_str ());
          return;
        }
        auth_message = *auth;
        client_key = card_key_ticket_key (*sig);
        control_source_push (door_out, gst_structure_new ("proof", "nonce", G_TYPE_STRING, nonce.c_str (),
                "server-nonce", G_TYPE_STRING, server_nonce.c_str (), "client-proof", G_TYPE_STRING,
                hex_of (*sig).c_str (), nullptr));
      });
}

/* ---- Session ------------------------------------------------------------ */

void
Client::stop_session ()
{
#ifdef HAVE_LIBINPUT
  console_input.stop ();
#endif
  if (session) {
    gst_element_set_state (session, GST_STATE_NULL);
    gst_object_unref (session);
    session = nullptr;
  }
  {
    std::lock_guard<std::mutex> g (lock);
    if (sink)
      gst_object_unref (sink);
    sink = nullptr;
  }
  ticket_src = nullptr;
  clip_src = nullptr;
  clip.reset ();
  for (GstElement *g : gates)
    gst_object_unref (g);
  gates.clear ();
  attached = false;
  if (admit_timeout)
    g_source_remove (admit_timeout);
  admit_timeout = 0;
}

/* Navigation from the window (or the console's input devices) goes to
 * the session's sink, which sends it upstream to the server; while no
 * session is attached it is dropped. */
static GstPadProbeReturn
on_display_event (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  Client *c = static_cast<Client *> (data);
  GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);
  if (GST_EVENT_TYPE (ev) != GST_EVENT_NAVIGATION)
    return GST_PAD_PROBE_OK;
  GstElement *to = nullptr;
  {
    std::lock_guard<std::mutex> g (c->lock);
    if (c->sink)
      to = GST_ELEMENT (gst_object_ref (c->sink));
  }
  if (to) {
    gst_element_send_event (to, gst_event_ref (ev));
    gst_object_unref (to);
  }
  return GST_PAD_PROBE_DROP;
}

static gboolean
display_bus (GstBus *bus, GstMessage *msg, gpointer data)
{
  Client *c = static_cast<Client *> (data);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    /* An error a display that failed to start posted before it was torn
     * down is not about the display now showing. */
    if (!c->display || !gst_object_has_as_ancestor (GST_MESSAGE_SRC (msg), GST_OBJECT (c->display)))
      return G_SOURCE_CONTINUE;
    GError *err = nullptr;
    gst_message_parse_error (msg, &err, nullptr);
    std::string m = std::string ("the display failed: ") + err->message;
    g_error_free (err);
    c->finish (EXIT_USAGE, m);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

/* The sinks a window may be shown by, best first: the window system the
 * client runs in, never a framebuffer or console fallback that
 * autovideosink might pick when no window system answers. gtksink in a
 * toolkit window comes first (X11 or Wayland: input, clipboard, full
 * screen; wrwindow.h); then the X sinks, which report keyboard and pointer
 * (GstNavigation); GStreamer 1.22's waylandsink does not, so it serves
 * only where there is neither GTK nor X (Xwayland sets DISPLAY). */
static std::vector<std::string>
window_sinks ()
{
  std::vector<std::string> sinks;
#ifdef HAVE_GTK
  if (g_getenv ("DISPLAY") || g_getenv ("WAYLAND_DISPLAY"))
    sinks.push_back ("gtksink");
#endif
  if (g_getenv ("DISPLAY")) {
    sinks.push_back ("xvimagesink");
    sinks.push_back ("ximagesink");
  }
  if (g_getenv ("WAYLAND_DISPLAY"))
    sinks.push_back ("waylandsink");
  return sinks;
}

bool
Client::start_display (GError **err)
{
  if (display || headless)
    return true;
  std::vector<std::string> sinks;
  if (console)
    sinks.push_back ("kmssink");
  else
    sinks = window_sinks ();
  if (sinks.empty ()) {
    g_set_error (err, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "no window system to open a window in (neither WAYLAND_DISPLAY nor DISPLAY is set; "
        "--console shows the session on a bare console)");
    return false;
  }
  std::string tried;
  for (const std::string &sink : sinks) {
    GstElement *factory_check = gst_element_factory_make (sink.c_str (), nullptr);
    if (!factory_check)
      continue;
    gst_object_unref (factory_check);
    tried += (tried.empty () ? "" : ", ") + sink;
    const bool toolkit = sink == "gtksink";
#ifdef HAVE_GTK
    /* GTK opens the display itself; a display server still starting
     * refuses it as it refuses the X sinks. */
    if (toolkit && !ToolkitWindow::toolkit_ready ())
      continue;
#endif
    /* The toolkit window draws the status itself; the others write it
     * over the picture. */
    std::string desc = "appsrc name=src is-live=true format=time do-timestamp=true "
        "max-buffers=2 leaky-type=downstream ! " +
        std::string (toolkit ? "" : "textoverlay name=status silent=true valignment=center halignment=center "
            "font-desc=\"Sans 9\" shaded-background=true ! ") +
        "videoconvert ! " + sink + " name=wayray-out sync=false";
    display = gst_parse_launch_full (desc.c_str (), nullptr, GST_PARSE_FLAG_FATAL_ERRORS, err);
    if (!display)
      return false;
    display_src = gst_bin_get_by_name (GST_BIN (display), "src");
    display_sink = gst_bin_get_by_name (GST_BIN (display), "wayray-out");
    status = gst_bin_get_by_name (GST_BIN (display), "status");
    GstPad *pad = gst_element_get_static_pad (display_src, "src");
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, on_display_event, this, nullptr);
    gst_object_unref (pad);
    GstBus *bus = gst_element_get_bus (display);
    gst_bus_add_watch (bus, display_bus, this);
    gst_object_unref (bus);
    /* A window the user resizes resizes the session (live, no reconnect);
     * the X sinks say their window's size. */
    if (!console && !window_poll && g_object_class_find_property (G_OBJECT_GET_CLASS (display_sink), "window-width"))
      window_poll = g_timeout_add (250, [] (gpointer data) -> gboolean {
            Client *c = static_cast<Client *> (data);
            guint64 w = 0, h = 0;
            /* One poll for the client's life: it ends only with a display
             * whose sink has no window size (a rebuilt display keeps it). */
            if (!c->display_sink ||
                !g_object_class_find_property (G_OBJECT_GET_CLASS (c->display_sink), "window-width")) {
              c->window_poll = 0;
              return G_SOURCE_REMOVE;
            }
            g_object_get (c->display_sink, "window-width", &w, "window-height", &h, nullptr);
            if (c->attached && w >= 16 && h >= 16 && w <= 8192 && h <= 8192 &&
                ((int) w != c->width || (int) h != c->height)) {
              /* Also what the next hello asks for (a reconnect, another
               * session). */
              c->width = (int) w;
              c->height = (int) h;
              c->monitors.clear ();   /* a window the user resized spans no monitors */
              send_screen_size (c, c->width, c->height);
              c->state ("state window " + std::to_string (w) + "x" + std::to_string (h));
            }
            return G_SOURCE_CONTINUE;
          }, this);
#ifdef HAVE_GTK
    if (toolkit && !open_window ()) {
      stop_display ();
      continue;
    }
#endif
    if (gst_element_set_state (display, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE)
      return true;
    stop_display ();
  }
  if (tried.empty ())
    g_set_error (err, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
        "no sink for the %s is installed (wanted %s)", console ? "console" : "window",
        console ? "kmssink" : "xvimagesink, ximagesink or waylandsink");
  else
    g_set_error (err, GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE,
        "the %s would not start (tried %s)", console ? "console display" : "window", tried.c_str ());
  return false;
}

void
Client::stop_display ()
{
  if (!display)
    return;
  GstBus *bus = gst_element_get_bus (display);
  gst_bus_remove_watch (bus);
  gst_object_unref (bus);
  gst_element_set_state (display, GST_STATE_NULL);
#ifdef HAVE_GTK
  window.reset ();
#endif
  for (GstElement *e : { display_src, display_sink, status, display })
    if (e)
      gst_object_unref (e);
  display = display_src = display_sink = status = nullptr;
}

#ifdef HAVE_GTK
/* The toolkit window around the display's gtksink: its size is the
 * session's, its clipboard the session's (the window system's keyboard
 * layout is read at each knock). */
bool
Client::open_window ()
{
  ToolkitWindow::Callbacks cb;
  cb.resized = [this] (int w, int h) {
    if (w < 16 || h < 16 || w > 8192 || h > 8192 || (w == width && h == height && monitors.empty ()))
      return;
    /* Also what the next hello asks for (a reconnect, another session);
     * a window the user resized spans no monitors. */
    width = w;
    height = h;
    monitors.clear ();
    if (attached)
      send_screen_size (this, w, h);
    state ("state window " + std::to_string (w) + "x" + std::to_string (h));
  };
  cb.closed = [this] { finish (EXIT_OK, "the window was closed"); };
  cb.offered = [this] (Selection sel, const std::vector<std::string> &types) { clip.local_offered (sel, types); };
  cb.fetch = [this] (Selection sel, const std::string &type, ClipboardLink::Done done) {
    clip.fetch (sel, type, std::move (done));
  };
  window = std::make_unique<ToolkitWindow> ();
  if (window->open (display_sink, "WayRay — " + host, width, height, std::move (cb)))
    return true;
  window.reset ();
  return false;
}
#endif

/* Hands a picture to the display pipeline, which stamps it with its own
 * clock (the buffer copy shares the pixels; only the timestamps differ). */
static void
push_to_display (GstElement *src, GstSample *sample)
{
  GstBuffer *b = gst_buffer_copy (gst_sample_get_buffer (sample));
  GST_BUFFER_PTS (b) = GST_BUFFER_DTS (b) = GST_CLOCK_TIME_NONE;
  GstSample *shown = gst_sample_new (b, gst_sample_get_caps (sample), nullptr, nullptr);
  gst_app_src_push_sample (GST_APP_SRC (src), shown);
  gst_sample_unref (shown);
  gst_buffer_unref (b);
}

/* Writes @text over the last picture (empty: clears it). */
void
Client::show_status (const std::string &text)
{
  if (!display)
    return;
#ifdef HAVE_GTK
  if (window) {
    window->set_status (text);
    return;
  }
#endif
  g_object_set (status, "text", text.c_str (), "silent", text.empty (), nullptr);
  GstSample *again = nullptr;
  {
    std::lock_guard<std::mutex> g (lock);
    if (last)
      again = gst_sample_ref (last);
  }
  if (again) {                  /* the overlay draws on frames: show it now */
    push_to_display (display_src, again);
    gst_sample_unref (again);
  }
}

/* The picture goes: a black one of its size in the window or on the
 * console, none for snapshots (a card taken out leaves nothing of the
 * session on the screen). */
void
Client::blank_picture ()
{
  GstSample *old = nullptr;
  {
    std::lock_guard<std::mutex> g (lock);
    old = last;
    last = nullptr;
    picture_w = picture_h = 0;
  }
  if (!old)
    return;
  GstVideoInfo vi;
  if (display_src && gst_video_info_from_caps (&vi, gst_sample_get_caps (old))) {
    GstBuffer *black = gst_buffer_new_allocate (nullptr, vi.size, nullptr);
    gst_buffer_memset (black, 0, 0, vi.size);
    GstSample *s = gst_sample_new (black, gst_sample_get_caps (old), nullptr, nullptr);
    {
      std::lock_guard<std::mutex> g (lock);
      last = s;                 /* the status is written over it */
    }
    push_to_display (display_src, s);
    gst_buffer_unref (black);
  }
  gst_sample_unref (old);
}

/* Away from the session with the card still in (or just out): the
 * picture gone, nothing pending, @text on the screen. */
void
Client::hold (const std::string &line, const std::string &text)
{
  if (retry_source)
    g_source_remove (retry_source);
  retry_source = 0;
  backoff_ms = 0;
  stop_door ();
  stop_session ();
  blank_picture ();
  show_status (text);
  state (line);
}

void
Client::card_job (std::function<void ()> work, std::function<void ()> done)
{
  unsigned epoch = card_epoch;
  card_jobs++;
  std::thread ([this, epoch, work = std::move (work), done = std::move (done)] () mutable {
        work ();
        run_on_main ([this, epoch, done = std::move (done)] {
              if (epoch == card_epoch && card_in)
                done ();
            });
        card_jobs--;
      }).detach ();
}

#ifdef HAVE_LIBINPUT
/* A console key while the PIN is asked for: digits (the top row or the
 * keypad), Backspace, Escape (starts over), Enter. */
static int
console_pin_digit (unsigned code)
{
  static const unsigned keypad[10] = { KEY_KP0, KEY_KP1, KEY_KP2, KEY_KP3, KEY_KP4, KEY_KP5, KEY_KP6, KEY_KP7,
                                       KEY_KP8, KEY_KP9 };
  if (code >= KEY_1 && code <= KEY_9)
    return (int) (code - KEY_1) + 1;
  if (code == KEY_0)
    return 0;
  for (int d = 0; d < 10; d++)
    if (keypad[d] == code)
      return d;
  return -1;
}
#endif

/* The card wants its PIN: asked for on the screen (a PIN entry in the
 * window, the console's keyboard, one dot per digit), or with the `pin`
 * command headless. */
void
Client::ask_pin (const std::string &text)
{
  pin_wanted = true;
  show_status (text);
  state ("state pin-wanted");
#ifdef HAVE_GTK
  if (window)
    window->ask_secret ([this] (const std::string &pin) { card_pin (pin); });
#endif
#ifdef HAVE_LIBINPUT
  if (console) {
    console_pin.clear ();
    GError *err = nullptr;
    if (!console_input.start_keys ([this, text] (unsigned code) {
          int digit = console_pin_digit (code);
          if (digit >= 0 && console_pin.size () < 16)
            console_pin.push_back ('0' + digit);
          else if (code == KEY_BACKSPACE && !console_pin.empty ())
            console_pin.pop_back ();
          else if (code == KEY_ESC)
            console_pin.clear ();
          else if ((code == KEY_ENTER || code == KEY_KPENTER) && !console_pin.empty ()) {
            std::string pin;
            pin.swap (console_pin);
            console_input.stop ();
            card_pin (pin);
            return;
          }
          std::string dots;
          for (size_t i = 0; i < console_pin.size (); i++)
            dots += "\u2022";
          show_status (text + "\n" + dots);
        }, "seat0", &err)) {
      show_status (text + "\n(" + err->message + ")");
      g_error_free (err);
    }
  }
#endif
}

/* The PIN: the card checks it (a login to its token); then the knock. */
void
Client::card_pin (const std::string &pin)
{
  if (!pin_wanted) {
    g_print ("error: no card wants a PIN now\n");
    return;
  }
  pin_wanted = false;
  show_status ("Checking your PIN …");
  auto wrong = std::make_shared<bool> (false);
  auto ok = std::make_shared<bool> (false);
  auto why = std::make_shared<std::string> ();
  CardKey key = card_key;
  card_job ([this, key, pin, wrong, ok, why] { *ok = p11.login (key, pin, wrong.get (), why.get ()); },
      [this, wrong, ok, why] {
        if (*ok) {
          state ("pin accepted");
          knock ();
        } else if (*wrong) {
          state ("pin wrong");
          ask_pin ("Wrong PIN. Enter your card's PIN");
        } else {
          g_print ("card refused the PIN: %s\n", why->c_str ());
          hold ("state card-held", "Your card refused the PIN:\n" + *why + "\nTake out your card.");
        }
      });
}

#ifdef HAVE_PCSC
/* A card came. One with an ID logs in by it at once; one without, or
 * whose ID is not registered, is asked for a key through the PKCS#11
 * module (slow: the module looks the card over), which signs the login. */
void
Client::card_arrived (const std::string &reader, bool have_id, const CardIdentity &id, const std::string &why)
{
  card_in = true;
  card_reader = reader;
  key_login = pin_wanted = key_tried = false;
  token.clear ();
  card_epoch++;
  card_id_why = why;
  if (have_id) {
    token = card_secret (id);
    knock ();
    return;
  }
  look_for_key ();
}
#endif

void
Client::look_for_key ()
{
  key_tried = true;
  key_login = false;
  token.clear ();
  if (pkcs11_module == "none") {
    card_login (false, "");
    return;
  }
  show_status ("Reading your card …");
  auto key = std::make_shared<CardKey> ();
  auto key_why = std::make_shared<std::string> ();
  auto found = std::make_shared<bool> (false);
  std::string module = pkcs11_module, reader = card_reader;
  card_job ([this, module, reader, key, key_why, found] {
        *found = p11.load (module, key_why.get ()) && p11.find_key (reader, key.get (), key_why.get ());
      }, [this, key, key_why, found] {
        if (*found)
          card_key = *key;
        card_login (*found, *key_why);
      });
}

void
Client::card_login (bool have_key, const std::string &key_why)
{
  if (have_key) {
    key_login = true;
    g_print ("card key %s (%s)%s\n", card_key_id (card_key.spki).c_str (), card_key.label.c_str (),
        card_key.needs_pin ? " PIN" : "");
    if (card_key.needs_pin)
      ask_pin ("Enter your card's PIN");
    else
      knock ();
    return;
  }
  if (!card_id_why.empty ()) {
    g_print ("card unreadable (%s): %s%s\n", card_reader.c_str (), card_id_why.c_str (),
        key_why.empty () ? "" : ("; no key: " + key_why).c_str ());
    hold ("state card-held", "This card cannot be read:\n" + card_id_why + "\nTake out your card.");
  } else {
    /* Its ID was not registered, and it has no key either. */
    g_print ("refused: card not registered\n");
    hold ("state card-held", "This card cannot log in:\ncard not registered\nTake out your card.");
  }
}

#ifdef HAVE_PCSC
/* The reader, from the first knock on: a card in is a login, a card out
 * ends the attachment (the server keeps the session). */
void
Client::watch_cards ()
{
  if (cards)
    return;
  hold ("state insert-card", "Insert your card");
  CardWatcher::Callbacks cb;
  cb.status = [this] (const std::string &message) {
    state ("card-reader " + message);
    if (!card_in)
      show_status ("Insert your card\n" + (message.rfind ("reader ", 0) == 0 ? "" : message));
  };
  cb.inserted = [this] (const std::string &reader, const CardIdentity &id, gint64 seen_us) {
    g_print ("card inserted %s (%s) %.1f\n", id.to_string ().c_str (), reader.c_str (),
        (g_get_monotonic_time () - seen_us) / 1000.0);
    card_arrived (reader, true, id, "");
  };
  cb.unreadable = [this] (const std::string &reader, const std::string &why) {
    g_print ("card inserted no-id (%s)\n", reader.c_str ());
    card_arrived (reader, false, CardIdentity (), why);
  };
  cb.removed = [this] (const std::string &reader, gint64 seen_us) {
    card_in = false;
    card_epoch++;
    token.clear ();
    if (key_login)
      p11.forget (card_key.slot);
    key_login = pin_wanted = false;
#ifdef HAVE_GTK
    if (window)
      window->ask_secret (nullptr);
#endif
    hold ("state insert-card", "Insert your card");
    g_print ("card removed (%s) picture gone %.1f\n", reader.c_str (), (g_get_monotonic_time () - seen_us) / 1000.0);
  };
  cards = std::make_unique<CardWatcher> ();
  cards->start (reader_wanted, std::move (cb));
}
#endif

/* Every picture the session pipeline delivers, in any mode: kept for
 * snapshots and status overlays, shown in the window or on the console,
 * and timed (first frame, keystroke latency). */
static GstFlowReturn
on_frame (GstAppSink *appsink, gpointer data)
{
  Client *c = static_cast<Client *> (data);
  GstSample *s = gst_app_sink_pull_sample (appsink);
  if (!s)
    return GST_FLOW_EOS;
  gint64 now = g_get_monotonic_time ();
  if (c->display_src)
    push_to_display (c->display_src, s);
  std::lock_guard<std::mutex> g (c->lock);
  if (c->last)
    gst_sample_unref (c->last);
  c->last = s;
  c->frames++;
  c->last_frame_us = now;
  /* A picture of another size: the session was resized. Reported with
   * the time since the last resize this client asked for. */
  GstVideoInfo vi;
  if (gst_video_info_from_caps (&vi, gst_sample_get_caps (s)) &&
      (vi.width != c->picture_w || vi.height != c->picture_h)) {
    bool first = c->picture_w == 0;
    c->picture_w = vi.width;
    c->picture_h = vi.height;
    double since = c->resize_sent_us ? (now - c->resize_sent_us) / 1000.0 : -1;
    if (!first)
      run_on_main ([vi, since] { g_print ("picture %dx%d %.1f\n", vi.width, vi.height, since); });
  }
  if (!c->first_frame_reported) {
    c->first_frame_reported = true;
    double ms = (now - c->knock_us) / 1000.0;
    bool created = c->new_session;
    run_on_main ([ms, created] { g_print ("first-frame %.1f %s\n", ms, created ? "new" : "reattach"); });
  }
  double ms = c->echo.frame (s, now);
  if (ms >= 0)
    run_on_main ([ms] { g_print ("latency %.3f\n", ms); });
  return GST_FLOW_OK;
}

static gboolean
session_bus (GstBus *bus, GstMessage *msg, gpointer data)
{
  Client *c = static_cast<Client *> (data);
  if (!c->session)
    return G_SOURCE_REMOVE;
  gboolean up = FALSE;
  std::string reason;
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT
      && gst_structure_has_name (gst_message_get_structure (msg), "wayray-quic-admitted")) {
    /* The session took our ticket: from now on this connection is ours,
     * and only what the server says on it can end the client. */
    if (!c->attached) {
      c->attached = true;
      for (GstElement *g : c->gates)
        g_object_set (g, "drop", FALSE, nullptr);
      c->backoff_ms = 0;
      if (c->admit_timeout)
        g_source_remove (c->admit_timeout);
      c->admit_timeout = 0;
      c->show_status ("");
      c->clip.resend ();
#ifdef HAVE_GTK
      /* The window may have taken another size since the hello (a window
       * manager placing it): the session follows. */
      if (c->window)
        send_screen_size (c, c->width, c->height, c->monitors);
#endif
      c->state ("state attached session-port=" + std::to_string (c->session_port) +
          " new=" + (c->new_session ? "1" : "0") + " size=" + std::to_string (c->width) + "x" +
          std::to_string (c->height));
    }
    return G_SOURCE_CONTINUE;
  }
  if (connection_message (msg, &up, &reason)) {
    if (up)
      return G_SOURCE_CONTINUE;
    if (c->attached && reason.find ("replaced") != std::string::npos) {
      /* The server closed our admitted connection because another client
       * presented the token: an authenticated statement, final. */
      c->finish (EXIT_DETACHED, "detached: another client took over the session");
      return G_SOURCE_REMOVE;
    }
    /* Anything else (lost, refused before admission, a stranger's doing)
     * means knocking again. */
    std::string what = (c->attached ? "connection lost: " : "not admitted: ") + reason;
    c->stop_session ();
    c->schedule_reconnect (what);
    return G_SOURCE_REMOVE;
  }
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = nullptr;
    gst_message_parse_error (msg, &err, nullptr);
    std::string m = err->message;
    g_error_free (err);
    /* A sound device that fails (unplugged, taken) costs the sound, not
     * the session: the next connection goes without it. */
    int part = audio_error_part (c->session, msg);
    if (part == 1)
      c->audio.speakers = false;
    else if (part == 2)
      c->audio.microphone = false;
    if (part)
      c->state (std::string ("warning: no ") + (part == 1 ? "sound" : "microphone") + ": " + m);
    c->stop_session ();
    if (m.find ("fingerprint") != std::string::npos) {
      c->finish (EXIT_TRUST, "refused the server: " + m);
      return G_SOURCE_REMOVE;
    }
    c->schedule_reconnect (m);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

void
Client::start_session ()
{
  std::string path;
  GError *err = nullptr;
  if (!find_pipeline_file (pipeline_name, "", &path, &err)) {
    finish (EXIT_USAGE, err->message);
    g_error_free (err);
    return;
  }
  if (!start_display (&err)) {
    finish (EXIT_USAGE, err->message);
    g_error_free (err);
    return;
  }
  /* The picture leaves the session pipeline here; window and console show
   * it through the display pipeline. */
  std::string video_sink =
      "appsink name=wayray-out sync=false emit-signals=true max-buffers=2 drop=true caps=video/x-raw,format=BGRx";
  PipelineFile file;
  if (!read_pipeline_file (path, &file, &err)) {
    finish (EXIT_USAGE, err->message);
    g_error_free (err);
    return;
  }
  Variables vars = {
    { "HOST", host }, { "PORT", std::to_string (session_port) }, { "FINGERPRINT", fingerprint },
    { "CERTIFICATE_NAME", certificate_name },
    { "KNOWN_HOSTS", known_hosts }, { "DRAW_CURSOR", headless ? "false" : "true" }, { "VIDEO_SINK", video_sink },
    /* Empty with none usable: the file's %if H264_DECODER parts are left out. */
    { "H264_DECODER", h264_decoder ().launch },
  };
  audio_variables (audio, headless, vars);
  session = load_pipeline (file, vars, &err);
  GstElement *net = session ? require_element (session, path, "net", "quicsrc", &err) : nullptr;
  if (!net) {
    finish (EXIT_USAGE, err->message);
    g_error_free (err);
    return;
  }
  {
    std::lock_guard<std::mutex> g (lock);
    sink = gst_bin_get_by_name (GST_BIN (session), "wayray-out");
  }

  /* Our own streams on the same connection: the ticket out, notices in. */
  ticket_src = control_source_new (nullptr);
  GstElement *qsink = gst_element_factory_make ("quicsink", nullptr);
  g_object_set (qsink, "mode", 1, "host", host.c_str (), "port", session_port, "pinned-fingerprint",
      fingerprint.c_str (), "certificate-name", certificate_name.c_str (), nullptr);
  /* The seat's port reaches the session by this prefix of the connection's
   * IDs (both elements: they share one connection). */
  std::vector<GstElement *> quic = { qsink };
  {
    GstIterator *it = gst_bin_iterate_recurse (GST_BIN (session));
    GValue v = G_VALUE_INIT;
    while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
      GstElement *e = GST_ELEMENT (g_value_get_object (&v));
      GstElementFactory *f = gst_element_get_factory (e);
      const gchar *fn = f ? GST_OBJECT_NAME (f) : "";
      if (g_strcmp0 (fn, "quicsrc") == 0 || g_strcmp0 (fn, "quicsink") == 0)
        quic.push_back (e);
      if (g_strcmp0 (fn, "valve") == 0 && g_str_has_prefix (GST_OBJECT_NAME (e), "gate"))
        gates.push_back (GST_ELEMENT (gst_object_ref (e)));
      g_value_reset (&v);
    }
    g_value_unset (&v);
    gst_iterator_free (it);
  }
  for (GstElement *e : quic) {
    g_object_set (e, "connection-id-prefix", route.c_str (), nullptr);
    gst_util_set_object_arg (G_OBJECT (e), "transport", transport.c_str ());
  }
  audio_out.attach (session);
  if (!known_hosts.empty ())
    g_object_set (qsink, "known-hosts-file", known_hosts.c_str (), nullptr);
  GstElement *notices = control_sink_new (nullptr);
  clip_src = control_source_new (nullptr, WAYRAY_CLIPBOARD_CAPS);
  GstElement *clip_in = control_sink_new (nullptr, 0);
  gst_bin_add_many (GST_BIN (session), ticket_src, qsink, notices, clip_src, clip_in, nullptr);
  link_to_stream (ticket_src, qsink, "ticket");
  link_to_stream (clip_src, qsink, "clipboard");
  g_object_set_data (G_OBJECT (net), "wayray-clipboard-in", clip_in);
  g_signal_connect (net, "pad-added", G_CALLBACK (+[] (GstElement *el, GstPad *pad, gpointer data) {
        auto *clip = static_cast<GstElement *> (g_object_get_data (G_OBJECT (el), "wayray-clipboard-in"));
        link_stream_pad (el, pad, { { "notice", GST_ELEMENT (data) }, { "clipboard", clip } });
      }), notices);
  on_buffers_on_main (clip_in, [this] (GstBuffer *buf) {
    /* What the session says counts once it admitted us. */
    if (attached && !clip.receive (buf))
      g_printerr ("wayray-client: a malformed clipboard message was dropped\n");
  });
  gst_object_unref (net);
  g_signal_connect (notices, "new-sample", G_CALLBACK (+[] (GstAppSink *s, gpointer data) -> GstFlowReturn {
        GstStructure *msg = control_message_pull (s);
        Client *c = static_cast<Client *> (data);
        run_on_main ([c, msg] {
              /* Notices count only on the connection the session admitted. */
              if (msg && gst_structure_has_name (msg, "detached") && c->attached) {
                const gchar *r = gst_structure_get_string (msg, "reason");
                c->finish (EXIT_DETACHED, std::string ("detached: ") + (r ? r : "by the server"));
              }
              if (msg)
                gst_structure_free (msg);
            });
        return GST_FLOW_OK;
      }), this);
  if (!sink || !GST_IS_APP_SINK (sink)) {
    finish (EXIT_USAGE, path + ": the pipeline must end in ${VIDEO_SINK}");
    return;
  }
  g_signal_connect (sink, "new-sample", G_CALLBACK (on_frame), this);

  GstBus *bus = gst_element_get_bus (session);
  gst_bus_add_watch (bus, session_bus, this);
  gst_object_unref (bus);
  {
    std::lock_guard<std::mutex> g (lock);
    first_frame_reported = false;
  }
  if (gst_element_set_state (session, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    stop_session ();
    schedule_reconnect ("the client pipeline would not start");
    return;
  }
  if (console && display_sink) {
#ifdef HAVE_LIBINPUT
    GError *ierr = nullptr;
    if (!console_input.start (display_sink, width, height, "seat0", &ierr)) {
      state (std::string ("warning: no local input: ") + ierr->message);
      g_error_free (ierr);
    }
#else
    state ("warning: no local input: built without libinput");
#endif
  }
  GstStructure *t = gst_structure_new ("ticket", "proof", G_TYPE_STRING, ticket_proof (client_key, ticket).c_str (),
      nullptr);
  control_source_push (ticket_src, t);
  /* A session that does not admit us soon (the ticket lost with its
   * connection, a server that restarted) is asked again from the front. */
  admit_timeout = g_timeout_add (ADMIT_TIMEOUT_MS, [] (gpointer data) -> gboolean {
        Client *c = static_cast<Client *> (data);
        c->admit_timeout = 0;
        c->stop_session ();
        c->schedule_reconnect ("the session did not admit this client within " +
            std::to_string (ADMIT_TIMEOUT_MS / 1000) + " s");
        return G_SOURCE_REMOVE;
      }, this);
}

void
Client::schedule_reconnect (const std::string &why)
{
  if (!reconnect) {
    finish (1, why);
    return;
  }
  backoff_ms = backoff_ms ? std::min<guint> (backoff_ms * 2, 10000) : 500;
  state ("state reconnecting in " + std::to_string (backoff_ms) + " ms (" + why + ")");
  show_status ("Reconnecting to " + host + " …\n" + why);
  if (retry_source)
    g_source_remove (retry_source);
  retry_source = g_timeout_add (backoff_ms, [] (gpointer data) -> gboolean {
        static_cast<Client *> (data)->knock ();
        return G_SOURCE_REMOVE;
      }, this);
}

void
Client::finish (int code, const std::string &why)
{
  /* With a card, a refusal or a detach is not the end: the screen says
   * why until the card comes out, and the next card logs in. */
  if (smartcard && card_in && code == EXIT_REFUSED && !key_tried && why.find ("card not registered") != std::string::npos) {
    /* Its ID is not registered: the card may have a key that is. */
    stop_door ();
    look_for_key ();
    return;
  }
  if (smartcard && card_in && (code == EXIT_REFUSED || code == EXIT_DETACHED)) {
    g_print ("%s\n", why.c_str ());
    hold ("state card-held", code == EXIT_REFUSED ? "This card cannot log in:\n" + why.substr (why.find (':') + 2) +
        "\nTake out your card." : "Your session went to another terminal.\nTake out your card, and put it in "
        "again to bring the session back here.");
    return;
  }
  if (!why.empty ())
    g_print ("%s\n", why.c_str ());
  exit_code = code;
  g_main_loop_quit (loop);
}

/* ---- Headless commands -------------------------------------------------- */

static std::string
keysym_name (gunichar ch)
{
  switch (ch) {
    case '\n': return "Return";
    case ' ': return "space";
    case '-': return "minus";
    case '>': return "greater";
    case '<': return "less";
    case '|': return "bar";
    case '/': return "slash";
    case '.': return "period";
    case ',': return "comma";
    case '=': return "equal";
    case '"': return "quotedbl";
    case '\'': return "apostrophe";
    case '_': return "underscore";
    case ';': return "semicolon";
    case ':': return "colon";
    case '&': return "ampersand";
    case '$': return "dollar";
    default: {
      gchar buf[8] = { 0 };
      g_unichar_to_utf8 (ch, buf);
      return buf;
    }
  }
}

static void
send_key (Client *c, const std::string &name)
{
  if (!c->sink)
    return;
  gst_element_send_event (c->sink, gst_navigation_event_new_key_press (name.c_str (), (GstNavigationModifierType) 0));
  gst_element_send_event (c->sink, gst_navigation_event_new_key_release (name.c_str (), (GstNavigationModifierType) 0));
}

static bool
write_ppm (GstSample *sample, const char *path)
{
  GstVideoInfo info;
  if (!gst_video_info_from_caps (&info, gst_sample_get_caps (sample)))
    return false;
  GstVideoFrame frame;
  if (!gst_video_frame_map (&frame, &info, gst_sample_get_buffer (sample), GST_MAP_READ))
    return false;
  FILE *f = fopen (path, "wb");
  if (!f) {
    gst_video_frame_unmap (&frame);
    return false;
  }
  fprintf (f, "P6\n%d %d\n255\n", info.width, info.height);
  std::string row (info.width * 3, '\0');
  for (int y = 0; y < info.height; y++) {
    const guint8 *p = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0) + y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
    for (int x = 0; x < info.width; x++) {
      row[x * 3] = p[x * 4 + 2];
      row[x * 3 + 1] = p[x * 4 + 1];
      row[x * 3 + 2] = p[x * 4];
    }
    fwrite (row.data (), 1, row.size (), f);
  }
  fclose (f);
  gst_video_frame_unmap (&frame);
  return true;
}

static gboolean
check_idle (gpointer data)
{
  Client *c = static_cast<Client *> (data);
  gint64 quiet;
  {
    std::lock_guard<std::mutex> g (c->lock);
    quiet = (g_get_monotonic_time () - c->last_frame_us) / 1000;
  }
  if (c->frames > 0 && quiet >= c->idle_wait_ms) {
    g_print ("idle\n");
    c->idle_source = 0;
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

/* Tells the session the client's screen (or window) is now @w x @h: an
 * upstream `wayray-resize` event on the display stream, which the session
 * follows once the size holds still (docs/session-protocol.md). */
static void
send_screen_size (Client *c, int w, int h, const wayray::MonitorLayout &monitors)
{
  if (!c->sink)
    return;
  GstStructure *st = gst_structure_new ("wayray-resize", "width", G_TYPE_INT, w, "height", G_TYPE_INT, h, nullptr);
  if (monitors.size () > 1)
    gst_structure_set (st, "monitors", G_TYPE_STRING, wayray::monitor_layout_format (monitors).c_str (), nullptr);
  gst_element_send_event (c->sink, gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM, st));
}

/* "\n" in a command's text is a newline, and back for answers. */
static std::string
unescape_newlines (const std::string &s)
{
  std::string out;
  for (size_t i = 0; i < s.size (); i++) {
    if (s[i] == '\\' && i + 1 < s.size () && s[i + 1] == 'n') {
      out += '\n';
      i++;
    } else {
      out += s[i];
    }
  }
  return out;
}

static std::string
escape_newlines (const std::string &s)
{
  std::string out;
  for (char ch : s)
    out += ch == '\n' ? std::string ("\\n") : std::string (1, ch);
  return out;
}

/* Headless clipboard commands (docs/wayray-client.md):
 *   clipboard-set TEXT, primary-set TEXT      this end's selection is TEXT
 *   clipboard-set-file TYPE FILE              ... FILE's bytes as TYPE
 *   clipboard-get, primary-get                paste the session's as text
 *   clipboard-get-file TYPE FILE              ... as TYPE into FILE */
static void
clipboard_command (Client *c, const std::string &line)
{
  Selection sel = line.rfind ("primary-", 0) == 0 ? Selection::Primary : Selection::Clipboard;
  const std::string name = selection_name (sel);
  const std::string verb = line.substr (line.find ('-') + 1);
  auto set = [c, sel, name] (const std::string &type, const std::string &bytes) {
    c->local_selection[(int) sel] = { type, bytes };
    c->clip.local_offered (sel, { type });
    g_print ("%s-set\n", name.c_str ());
  };
  if (verb.rfind ("set ", 0) == 0) {
    set (kClipboardText, unescape_newlines (verb.substr (4)));
  } else if (verb.rfind ("set-file ", 0) == 0 || verb.rfind ("get-file ", 0) == 0) {
    gchar **parts = g_strsplit (verb.c_str () + 9, " ", 2);
    std::string type = parts[0] ? parts[0] : "", path = parts[0] && parts[1] ? parts[1] : "";
    g_strfreev (parts);
    if ((type != kClipboardText && type != kClipboardPng) || path.empty ()) {
      g_print ("error: %s-%s TYPE FILE (TYPE %s or %s)\n", name.c_str (), verb.substr (0, 8).c_str (),
          kClipboardText, kClipboardPng);
      return;
    }
    if (verb[0] == 's') {
      gchar *data = nullptr;
      gsize len = 0;
      if (!g_file_get_contents (path.c_str (), &data, &len, nullptr) || len > kClipboardMaxBytes) {
        g_print ("%s-error cannot read %s (or larger than %u MiB)\n", name.c_str (), path.c_str (),
            (guint) (kClipboardMaxBytes >> 20));
        g_free (data);
        return;
      }
      set (type, std::string (data, len));
      g_free (data);
      return;
    }
    c->clip.fetch (sel, type, [name, path] (GBytes *data, const std::string &error) {
          gsize len = 0;
          const gchar *bytes = data ? (const gchar *) g_bytes_get_data (data, &len) : nullptr;
          if (!data)
            g_print ("%s-error %s\n", name.c_str (), error.c_str ());
          else if (!g_file_set_contents (path.c_str (), bytes ? bytes : "", len, nullptr))
            g_print ("%s-error cannot write %s\n", name.c_str (), path.c_str ());
          else
            g_print ("%s-file %" G_GSIZE_FORMAT "\n", name.c_str (), len);
          if (data)
            g_bytes_unref (data);
        });
  } else if (verb == "get") {
    c->clip.fetch (sel, kClipboardText, [name] (GBytes *data, const std::string &error) {
          if (!data) {
            g_print ("%s-error %s\n", name.c_str (), error.c_str ());
            return;
          }
          gsize len = 0;
          const gchar *bytes = (const gchar *) g_bytes_get_data (data, &len);
          std::string text (bytes ? bytes : "", len);
          g_bytes_unref (data);
          /* The bytes as they are (g_print would convert them to the
           * locale's character set). */
          std::string line = name + " " + escape_newlines (text) + "\n";
          fwrite (line.data (), 1, line.size (), stdout);
          fflush (stdout);
        });
  } else {
    g_print ("error: unknown command '%s'\n", line.c_str ());
  }
}

static void
handle_command (Client *c, const std::string &line)
{
  if (line.rfind ("type ", 0) == 0) {
    std::string text = line.substr (5);
    /* "\n" in the text is Enter. */
    for (size_t i = 0; i < text.size (); i++) {
      if (text[i] == '\\' && i + 1 < text.size () && text[i + 1] == 'n') {
        send_key (c, "Return");
        i++;
      } else {
        send_key (c, keysym_name ((guchar) text[i]));
      }
    }
    g_print ("typed\n");
  } else if (line.rfind ("key ", 0) == 0) {
    {
      std::lock_guard<std::mutex> g (c->lock);
      c->echo.arm (g_get_monotonic_time (), nullptr, nullptr);
    }
    send_key (c, line.substr (4));
  } else if (line.rfind ("key-in ", 0) == 0) {
    Region r;
    const char *key = nullptr;
    if (!parse_region (line.c_str () + 7, &r, &key) || !*key) {
      g_print ("error: key-in X Y W H NAME\n");
      return;
    }
    {
      std::lock_guard<std::mutex> g (c->lock);
      c->echo.arm (g_get_monotonic_time (), c->last, &r);
    }
    send_key (c, key);
  } else if (line.rfind ("click ", 0) == 0) {
    double x = 0, y = 0;
    if (sscanf (line.c_str () + 6, "%lf %lf", &x, &y) == 2 && c->sink) {
      gst_element_send_event (c->sink, gst_navigation_event_new_mouse_move (x, y, (GstNavigationModifierType) 0));
      gst_element_send_event (c->sink, gst_navigation_event_new_mouse_button_press (1, x, y, (GstNavigationModifierType) 0));
      gst_element_send_event (c->sink, gst_navigation_event_new_mouse_button_release (1, x, y, (GstNavigationModifierType) 0));
    }
    g_print ("clicked\n");
  } else if (line.rfind ("clipboard-", 0) == 0 || line.rfind ("primary-", 0) == 0) {
    clipboard_command (c, line);
  } else if (line.rfind ("keycode ", 0) == 0) {
    /* A key by its place on the keyboard (evdev code), as the console's
     * keyboard sends it: the session's keymap says what it means. */
    guint64 code = g_ascii_strtoull (line.c_str () + 8, nullptr, 10);
    if (code < 1 || code > 767 || !c->sink) {
      g_print ("error: keycode N (an evdev key code, 1..767)\n");
      return;
    }
    std::string kname = "evdev-" + std::to_string (code);
    for (bool press : { true, false }) {
      GstEvent *e = press ? gst_navigation_event_new_key_press (kname.c_str (), (GstNavigationModifierType) 0)
                          : gst_navigation_event_new_key_release (kname.c_str (), (GstNavigationModifierType) 0);
      gst_structure_set (gst_event_writable_structure (e), "keycode", G_TYPE_UINT, (guint) code, nullptr);
      gst_element_send_event (c->sink, e);
    }
    g_print ("typed\n");
  } else if (line.rfind ("resize ", 0) == 0) {
    /* The screen changed size (or its monitors): the session follows, no
     * reconnect. */
    int w = 0, h = 0;
    wayray::MonitorLayout layout;
    std::string error;
    if (!wayray::monitor_layout_parse (line.substr (7), &layout, &error)) {
      g_print ("error: resize WxH[,WxH...]: %s\n", error.c_str ());
      return;
    }
    wayray::monitor_layout_bounds (layout, &w, &h);
    {
      std::lock_guard<std::mutex> g (c->lock);
      c->resize_sent_us = g_get_monotonic_time ();
    }
    send_screen_size (c, w, h, layout);
    g_print ("resize sent\n");
  } else if (line.rfind ("wait-idle ", 0) == 0) {
    c->idle_wait_ms = g_ascii_strtoll (line.c_str () + 10, nullptr, 10);
    if (!c->idle_source)
      c->idle_source = g_timeout_add (20, check_idle, c);
  } else if (line.rfind ("snapshot ", 0) == 0) {
    GstSample *s = nullptr;
    {
      std::lock_guard<std::mutex> g (c->lock);
      if (c->last)
        s = gst_sample_ref (c->last);
    }
    bool ok = s && write_ppm (s, line.c_str () + 9);
    if (s)
      gst_sample_unref (s);
    g_print ("%s\n", ok ? "snapshot written" : "snapshot failed: no frame yet");
  } else if (line == "stats") {
    std::lock_guard<std::mutex> g (c->lock);
    g_print ("frames %" G_GUINT64_FORMAT "\n", c->frames);
    std::string a = c->session ? audio_stats (c->session) : "";
    if (!a.empty ())
      g_print ("audio %s\n", a.c_str ());
    GstElement *net = c->session ? gst_bin_get_by_name (GST_BIN (c->session), "net") : nullptr;
    GstStructure *st = nullptr;
    if (net)
      g_object_get (net, "stats", &st, nullptr);
    if (st) {
      gchar *text = gst_structure_to_string (st);
      g_print ("link %s\n", text);
      g_free (text);
      gst_structure_free (st);
    }
    if (net)
      gst_object_unref (net);
  } else if (line.rfind ("watch ", 0) == 0) {
    /* Times the next change of a region, without a key (an animation, a
     * video's frame): benchmarks compare it with a sound's arrival. */
    Region r;
    const char *rest = nullptr;
    if (!parse_region (line.c_str () + 6, &r, &rest)) {
      g_print ("error: watch X Y W H\n");
      return;
    }
    std::lock_guard<std::mutex> g (c->lock);
    c->echo.arm (g_get_monotonic_time (), c->last, &r);
  } else if (line.rfind ("wait-sound ", 0) == 0) {
    double level = g_ascii_strtod (line.c_str () + 11, nullptr);
    if (c->audio.out_file.empty () || level <= 0 || level > 1) {
      g_print ("error: wait-sound LEVEL (0..1, with --audio-file)\n");
      return;
    }
    c->audio_out.wait_sound (level, [] (double ms) { run_on_main ([ms] { g_print ("sound %.3f\n", ms); }); });
  } else if (line.rfind ("pin ", 0) == 0) {
    c->card_pin (line.substr (4));
  } else if (line == "quit") {
    c->finish (EXIT_OK, "");
  } else if (!line.empty ()) {
    g_print ("error: unknown command '%s'\n", line.c_str ());
  }
}

static gboolean
on_stdin (GIOChannel *ch, GIOCondition cond, gpointer data)
{
  Client *c = static_cast<Client *> (data);
  gchar *line = nullptr;
  gsize len = 0;
  GIOStatus st = g_io_channel_read_line (ch, &line, &len, nullptr, nullptr);
  if (st == G_IO_STATUS_EOF || st == G_IO_STATUS_ERROR)
    return G_SOURCE_REMOVE;     /* no more commands; keep showing the session */
  if (line) {
    handle_command (c, g_strchomp (line));
    g_free (line);
  }
  return G_SOURCE_CONTINUE;
}

/* The value of NAME=VALUE on the kernel command line ($WAYRAY_KERNEL_CMDLINE
 * names another file to read, for containers and tests); "" when absent. */
static std::string
kernel_command_line_value (const std::string &name)
{
  const char *path = g_getenv ("WAYRAY_KERNEL_CMDLINE");
  gchar *text = nullptr;
  if (!g_file_get_contents (path && *path ? path : "/proc/cmdline", &text, nullptr, nullptr))
    return "";
  std::string value;
  gchar **words = g_strsplit_set (g_strstrip (text), " \t\n", -1);
  for (gchar **w = words; *w; w++)
    if (g_str_has_prefix (*w, (name + "=").c_str ()))
      value = *w + name.size () + 1;
  g_strfreev (words);
  g_free (text);
  return value;
}

/* --smartcard[=READER] */
static gchar *smartcard_reader;
static gboolean smartcard_given;

static gboolean
smartcard_option (const gchar *, const gchar *value, gpointer, GError **)
{
  smartcard_given = TRUE;
  g_free (smartcard_reader);
  smartcard_reader = g_strdup (value ? value : "");
  return TRUE;
}

int
main (int argc, char **argv)
{
  gchar *fingerprint_arg = nullptr, *pkcs11_module = nullptr;
  gchar *token = nullptr, *size = nullptr, *pipeline = nullptr, *known = nullptr, *name = nullptr;
  gchar *decoder = nullptr, *transport = nullptr, *profiles = nullptr;
  gboolean headless = FALSE, console = FALSE, no_reconnect = FALSE;
  gboolean no_audio = FALSE, no_microphone = FALSE;
  gchar *audio_sink = nullptr, *audio_source = nullptr, *audio_file = nullptr, *microphone_file = nullptr;
  gchar *keymap_layout = nullptr, *keymap_variant = nullptr, *keymap_options = nullptr;
  gint scale = 1;
  GOptionEntry entries[] = {
    {"token", 't', 0, G_OPTION_ARG_STRING, &token, "The token (default: $WAYRAY_TOKEN)", "TOKEN"},
    {"pkcs11-module", 0, 0, G_OPTION_ARG_FILENAME, &pkcs11_module,
        "With --smartcard: the PKCS#11 module for cards with a key (default: OpenSC's opensc-pkcs11.so; "
        "none: only registered card IDs)", "PATH|none"},
    {"smartcard", 0, G_OPTION_FLAG_OPTIONAL_ARG, G_OPTION_ARG_CALLBACK, (gpointer) smartcard_option,
        "Log in with the smart card in the reader (pcscd), the first or the one named; the console's "
        "default without a token", "[=READER]"},
    {"size", 0, 0, G_OPTION_ARG_STRING, &size, "Screen size asked for the session (default 1920x1080); "
        "with several monitors one size each, left to right, or with places (1920x1080+0+0,...): "
        "the session gets one output per monitor", "WxH[,WxH...]"},
    {"headless", 0, 0, G_OPTION_ARG_NONE, &headless, "No window: commands on stdin, reports on stdout", nullptr},
    {"console", 0, 0, G_OPTION_ARG_NONE, &console, "Full screen on a bare console through kmssink", nullptr},
    {"pipeline", 0, 0, G_OPTION_ARG_STRING, &pipeline, "Client pipeline file (default client-session)", "NAME"},
    {"known-hosts", 0, 0, G_OPTION_ARG_FILENAME, &known, "Known-hosts file for trust on first use", "FILE"},
    {"fingerprint", 0, 0, G_OPTION_ARG_STRING, &fingerprint_arg, "The server's certificate fingerprint (SHA-256, "
        "`wayrayctl fingerprint`): trusted instead of a known-hosts file (also $WAYRAY_FINGERPRINT or "
        "wayray.fingerprint= on the kernel command line)", "HEX"},
    {"name", 0, 0, G_OPTION_ARG_STRING, &name, "This client's name, shown by wayrayctl (default: host name)", "NAME"},
    {"no-reconnect", 0, 0, G_OPTION_ARG_NONE, &no_reconnect, "Exit instead of reconnecting", nullptr},
    {"transport", 0, 0, G_OPTION_ARG_STRING, &transport,
        "auto (QUIC, TCP+TLS when QUIC does not get through within 3 s), quic or tcp (at once, e.g. where UDP is "
        "blocked)", "auto|quic|tcp"},
    {"video-decoder", 0, 0, G_OPTION_ARG_STRING, &decoder,
        "H.264 decoders to try, in order (default auto: hardware first, then avdec_h264, openh264dec); "
        "none: no video path, the server sends everything losslessly", "LIST|none"},
    {"video-profiles", 0, 0, G_OPTION_ARG_STRING, &profiles,
        "H.264 profiles to tell the server the decoder takes (default: what the decoder's caps say, or any)",
        "high,main,constrained-baseline,..."},
    {"no-audio", 0, 0, G_OPTION_ARG_NONE, &no_audio, "Play none of the session's sound", nullptr},
    {"no-microphone", 0, 0, G_OPTION_ARG_NONE, &no_microphone, "Send no microphone to the session", nullptr},
    {"audio-sink", 0, 0, G_OPTION_ARG_STRING, &audio_sink,
        "Play the session's sound on this PulseAudio/PipeWire sink, or alsa:DEVICE (default: autoaudiosink)",
        "DEVICE"},
    {"audio-source", 0, 0, G_OPTION_ARG_STRING, &audio_source,
        "Record the microphone from this PulseAudio/PipeWire source, or alsa:DEVICE (default: autoaudiosrc)",
        "DEVICE"},
    {"audio-file", 0, 0, G_OPTION_ARG_FILENAME, &audio_file,
        "Headless: write what would be played to this WAV file (16-bit stereo, 48 kHz)", "OUT.wav"},
    {"microphone-file", 0, 0, G_OPTION_ARG_FILENAME, &microphone_file,
        "Headless: play this WAV file as the microphone, in real time, once", "IN.wav"},
    {"scale", 0, 0, G_OPTION_ARG_INT, &scale,
        "Scale factor of this screen (HiDPI, 1..4): the session's applications draw at it", "N"},
    {"keymap-layout", 0, 0, G_OPTION_ARG_STRING, &keymap_layout,
        "XKB layout of this keyboard, for the session (default: XKBLAYOUT of /etc/default/keyboard; "
        "none: the server's default)", "LAYOUT"},
    {"keymap-variant", 0, 0, G_OPTION_ARG_STRING, &keymap_variant, "XKB variant of the layout", "VARIANT"},
    {"keymap-options", 0, 0, G_OPTION_ARG_STRING, &keymap_options, "XKB options, e.g. ctrl:nocaps", "OPTIONS"},
    {nullptr},
  };
  GOptionContext *ctx = g_option_context_new ("HOST[:PORT] - show a WayRay session");
  g_option_context_add_main_entries (ctx, entries, nullptr);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  GError *err = nullptr;
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || argc != 2) {
    g_printerr ("%s\n", err ? err->message : "usage: wayray-client HOST[:PORT] --token TOKEN");
    return EXIT_USAGE;
  }
  g_option_context_free (ctx);

  Client c;
  /* The clipboard: the session's side comes over its stream; this end's,
   * headless, is what the commands set. */
  c.clip.send = [&c] (GstBuffer *buf) {
    if (c.clip_src)
      gst_app_src_push_buffer (GST_APP_SRC (c.clip_src), buf);
    else
      gst_buffer_unref (buf);
  };
  c.clip.peer_offered = [&c] (Selection sel, const std::vector<std::string> &types) {
#ifdef HAVE_GTK
    if (c.window)
      c.window->session_offered (sel, types);
#endif
    if (!c.headless)
      return;
    std::string list;
    for (const std::string &t : types)
      list += (list.empty () ? "" : ",") + t;
    g_print ("%s-offer %s\n", selection_name (sel), list.empty () ? "(none)" : list.c_str ());
  };
  c.clip.read_local = [&c] (Selection sel, const std::string &type, ClipboardLink::Done done) {
#ifdef HAVE_GTK
    if (c.window) {
      c.window->read_desktop (sel, type, std::move (done));
      return;
    }
#endif
    const Client::LocalSelection &l = c.local_selection[(int) sel];
    if (l.type != type) {
      done (nullptr, "not held here");
      return;
    }
    done (g_bytes_new (l.bytes.data (), l.bytes.size ()), "");
  };
  the_client = &c;
  std::string target = argv[1];
  size_t colon = target.rfind (':');
  if (colon != std::string::npos && target.find (']') == std::string::npos &&
      target.find (':') == colon) {
    c.host = target.substr (0, colon);
    c.port = (guint) g_ascii_strtoull (target.c_str () + colon + 1, nullptr, 10);
  } else if (target.size () > 2 && target[0] == '[' && target.find ("]:") != std::string::npos) {
    c.host = target.substr (1, target.find ("]:") - 1);
    c.port = (guint) g_ascii_strtoull (target.c_str () + target.find ("]:") + 2, nullptr, 10);
  } else {
    c.host = target;
  }
  if (c.port == 0 || c.port > 65535) {
    g_printerr ("wayray-client: bad port in '%s'\n", argv[1]);
    return EXIT_USAGE;
  }
  c.token = token ? token : (g_getenv ("WAYRAY_TOKEN") ? g_getenv ("WAYRAY_TOKEN") : "");
  /* A console with no token is a terminal with a card reader. */
  c.smartcard = smartcard_given || (console && c.token.empty ());
  c.reader_wanted = smartcard_reader ? smartcard_reader : "";
  if (pkcs11_module)
    c.pkcs11_module = pkcs11_module;
  if (c.smartcard && token) {
    g_printerr ("wayray-client: --token and --smartcard: the card is the token; give one of them\n");
    return EXIT_USAGE;
  }
  if (c.smartcard)
    c.token.clear ();
#ifndef HAVE_PCSC
  if (c.smartcard) {
    g_printerr ("wayray-client: this client was built without smart card support (libpcsclite)\n");
    return EXIT_USAGE;
  }
#endif
  if (c.token.empty () && !c.smartcard) {
    g_printerr ("wayray-client: no token (--token, $WAYRAY_TOKEN or --smartcard)\n");
    return EXIT_USAGE;
  }
  if (size) {
    std::string error;
    if (!wayray::monitor_layout_parse (size, &c.monitors, &error)) {
      g_printerr ("wayray-client: --size wants WxH, e.g. 1280x720, or one WxH per monitor, e.g. "
          "1920x1080,1280x1024: %s\n", error.c_str ());
      return EXIT_USAGE;
    }
    wayray::monitor_layout_bounds (c.monitors, &c.width, &c.height);
    if (c.monitors.size () < 2)
      c.monitors.clear ();
  }
  c.headless = headless;
  c.audio.speakers = !no_audio;
  c.audio.microphone = !no_microphone;
  c.audio.sink_device = audio_sink ? audio_sink : "";
  c.audio.source_device = audio_source ? audio_source : "";
  c.audio.out_file = audio_file ? audio_file : "";
  c.audio.microphone_file = microphone_file ? microphone_file : "";
  {
    std::string why;
    if (!audio_options_check (c.audio, headless, why)) {
      g_printerr ("wayray-client: %s\n", why.c_str ());
      return EXIT_USAGE;
    }
    if (!c.audio.out_file.empty () && !c.audio_out.open (c.audio.out_file, why)) {
      g_printerr ("wayray-client: %s\n", why.c_str ());
      return EXIT_USAGE;
    }
    std::vector<std::string> warnings;
    audio_probe (c.audio, headless, warnings);
    for (const std::string &w : warnings)
      c.state ("warning: " + w);
  }
  c.console = console;
  c.reconnect = !no_reconnect;
  if (pipeline)
    c.pipeline_name = pipeline;
  if (known)
    c.known_hosts = known;
  {
    /* The fingerprint to pin: the option, the environment, the kernel
     * command line (a network-booted terminal's), in that order. */
    std::string from, given = kernel_command_line_value ("wayray.fingerprint");
    from = given.empty () ? "" : "the kernel command line";
    if (g_getenv ("WAYRAY_FINGERPRINT") && *g_getenv ("WAYRAY_FINGERPRINT")) {
      given = g_getenv ("WAYRAY_FINGERPRINT");
      from = "WAYRAY_FINGERPRINT";
    }
    if (fingerprint_arg) {
      given = fingerprint_arg;
      from = "--fingerprint";
    }
    if (!given.empty ()) {
      c.pinned = wrtls::normalize_fingerprint (given);
      if (c.pinned.empty ()) {
        g_printerr ("wayray-client: %s: '%s' is not a SHA-256 fingerprint (64 hex digits)\n", from.c_str (),
            given.c_str ());
        return EXIT_USAGE;
      }
    }
  }
  if (decoder)
    c.video_decoder = decoder;
  if (profiles) {
    c.video_profiles = profiles;
    for (char ch : c.video_profiles)
      if (!g_ascii_isalnum (ch) && ch != '-' && ch != ',' && ch != ':') {
        g_printerr ("wayray-client: --video-profiles wants a comma-separated list of H.264 profile names\n");
        return EXIT_USAGE;
      }
  }
  if (scale < 1 || scale > 4) {
    g_printerr ("wayray-client: --scale wants 1, 2, 3 or 4\n");
    return EXIT_USAGE;
  }
  c.scale = scale;
  /* The keyboard in front of the user: what the machine is configured
   * with, unless told. "none" leaves the choice to the server. */
  c.keymap = system_keymap ();
  if (keymap_layout) {
    c.keymap_given = true;
    c.keymap = ClientKeymap { keymap_layout, keymap_variant ? keymap_variant : "",
      keymap_options ? keymap_options : "" };
    if (c.keymap.layout == "none")
      c.keymap = ClientKeymap ();
  } else if (keymap_variant || keymap_options) {
    g_printerr ("wayray-client: --keymap-variant and --keymap-options go with --keymap-layout\n");
    return EXIT_USAGE;
  }
  if (transport) {
    c.transport = transport;
    if (c.transport != "auto" && c.transport != "quic" && c.transport != "tcp") {
      g_printerr ("wayray-client: --transport wants auto, quic or tcp\n");
      return EXIT_USAGE;
    }
  }
  c.name = name ? name : g_get_host_name ();

  c.loop = g_main_loop_new (nullptr, FALSE);
  g_unix_signal_add (SIGINT, [] (gpointer data) -> gboolean {
        static_cast<Client *> (data)->finish (EXIT_OK, "");
        return G_SOURCE_REMOVE;
      }, &c);
  g_unix_signal_add (SIGTERM, [] (gpointer data) -> gboolean {
        static_cast<Client *> (data)->finish (EXIT_OK, "");
        return G_SOURCE_REMOVE;
      }, &c);
  /* State lines go out as they happen, also into a pipe or a journal. */
  setvbuf (stdout, nullptr, _IOLBF, 0);
  if (headless) {
    GIOChannel *ch = g_io_channel_unix_new (0);
    g_io_add_watch (ch, (GIOCondition) (G_IO_IN | G_IO_HUP), on_stdin, &c);
    g_io_channel_unref (ch);
  }
  /* From within the loop, so that a client that gives up at once quits it. */
  g_idle_add ([] (gpointer data) -> gboolean {
        static_cast<Client *> (data)->begin ();
        return G_SOURCE_REMOVE;
      }, &c);
  g_main_loop_run (c.loop);

#ifdef HAVE_PCSC
  c.cards.reset ();
#endif
  /* A card still signing or checking a PIN uses the PKCS#11 module. */
  for (int i = 0; i < 500 && c.card_jobs > 0; i++)
    g_usleep (10000);
  c.stop_door ();
  c.stop_session ();
  c.stop_display ();
  if (c.last)
    gst_sample_unref (c.last);
  return c.exit_code;
}
