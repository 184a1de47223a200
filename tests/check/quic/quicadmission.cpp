/* A server's connections and their admission: quicsrc + quicsink servers
 * with admission=application, clients that wait for it, answers to one
 * connection, the admission timeout, Retry, and a handshake flood
 * (wr-quic-flood) that must not keep a real client out.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/app/app.h>
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#include "quictestutil.h"

#include <glib/gstdio.h>

#include <atomic>
#include <string>
#include <thread>

#define META "WayrayConnectionMeta"

/* A temporary directory (the server's key and certificate, a known-hosts
 * file per client) and a port. */
struct Site {
  std::string dir;
  guint port = free_port ();

  Site ()
  {
    gchar *d = g_dir_make_tmp ("wayray-admission-XXXXXX", nullptr);
    dir = d;
    g_free (d);
  }
  ~Site ()
  {
    GDir *d = g_dir_open (dir.c_str (), 0, nullptr);
    for (const gchar *n; d && (n = g_dir_read_name (d));)
      g_unlink ((dir + "/" + n).c_str ());
    if (d)
      g_dir_close (d);
    g_rmdir (dir.c_str ());
  }
  std::string props (bool server, const std::string & host, const std::string & extra) const
  {
    std::string files = server ? " certificate-file=" + dir + "/cert.pem private-key-file=" + dir + "/key.pem"
        : " known-hosts-file=" + dir + "/known_hosts-" + host;
    return std::string ("mode=") + (server ? "server" : "client") + " host=" + host + " port="
        + std::to_string (port) + files + " " + extra + " ";
  }
};

/* The server side of a session: a quicsrc whose "ticket" stream goes to an
 * appsink, a quicsink with the session's media ("display") and answers to
 * one connection ("welcome"), both on one endpoint. */
struct Server {
  GstElement *pipe, *src, *sink, *tickets, *disp, *reply;

  Server (const Site & site, const std::string & extra)
  {
    std::string p = site.props (true, "127.0.0.1", extra);
    pipe = play (launch ("quicsrc name=sr " + p + " sr.ticket ! appsink name=tickets sync=false async=false "
        "appsrc name=disp format=time caps=application/x-wayray-test ! q.display "
        "appsrc name=reply format=time caps=application/x-wayray-reply ! q.welcome quicsink name=q " + p));
    src = by_name (pipe, "sr");
    sink = by_name (pipe, "q");
    tickets = by_name (pipe, "tickets");
    disp = by_name (pipe, "disp");
    reply = by_name (pipe, "reply");
  }
  ~Server ()
  {
    stop (pipe);
    for (GstElement *e : { src, sink, tickets, disp, reply })
      gst_object_unref (e);
  }
};

/* A thin client: what the server sends on "display" and "welcome" goes to
 * appsinks; it sends on "ticket" and "microphone". @host is a spelling of
 * 127.0.0.1 of its own, so that each client of this process has an
 * endpoint (and a connection) of its own. */
struct Peer {
  GstElement *pipe, *src, *display, *welcome, *ticket, *mic;

  Peer (const Site & site, const std::string & host)
  {
    std::string p = site.props (false, host, "");
    pipe = play (launch ("quicsrc name=c " + p + " c.display ! appsink name=display sync=false async=false "
        "c.welcome ! appsink name=welcome sync=false async=false "
        "appsrc name=ticket format=time caps=application/x-wayray-ticket ! k.ticket "
        "appsrc name=mic format=time caps=audio/x-wayray-test ! k.microphone quicsink name=k " + p));
    src = by_name (pipe, "c");
    display = by_name (pipe, "display");
    welcome = by_name (pipe, "welcome");
    ticket = by_name (pipe, "ticket");
    mic = by_name (pipe, "mic");
  }
  ~Peer ()
  {
    stop (pipe);
    for (GstElement *e : { src, display, welcome, ticket, mic })
      gst_object_unref (e);
  }
};

/* 64 bytes of @tag, for connection @conn only when not 0. */
static void
push (GstElement * appsrc, guint8 tag, guint64 conn = 0)
{
  GstBuffer *b = gst_buffer_new_allocate (nullptr, 64, nullptr);
  gst_buffer_memset (b, 0, tag, 64);
  if (conn) {
    GstCustomMeta *m = gst_buffer_add_custom_meta (b, META);
    fail_unless (m != nullptr, "the plugin did not register " META);
    GstStructure *s = gst_custom_meta_get_structure (m);
    gst_structure_set_name (s, "wayray-connection");
    gst_structure_set (s, "id", G_TYPE_UINT64, conn, nullptr);
  }
  fail_unless_equals_int (gst_app_src_push_buffer (GST_APP_SRC (appsrc), b), GST_FLOW_OK);
}

/* The next buffer @appsink gets within @timeout (the next with @tag when
 * @tag >= 0; others are skipped), or nullptr. */
static GstBuffer *
pull (GstElement * appsink, GstClockTime timeout, int tag = -1)
{
  gint64 end = g_get_monotonic_time () + timeout / 1000;
  for (gint64 left; (left = end - g_get_monotonic_time ()) > 0;) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (appsink), left * 1000);
    if (!s)
      break;
    GstBuffer *b = gst_buffer_ref (gst_sample_get_buffer (s));
    gst_sample_unref (s);
    guint8 first = 0;
    gst_buffer_extract (b, 0, &first, 1);
    if (tag < 0 || first == tag)
      return b;
    gst_buffer_unref (b);
  }
  return nullptr;
}

static bool
nothing_arrives (GstElement * appsink, GstClockTime wait)
{
  GstBuffer *b = pull (appsink, wait);
  gst_clear_buffer (&b);
  return b == nullptr;
}

/* Pushes @tag into @appsrc until it reaches @appsink (media dropped while
 * the server changes clients is sent again). */
static bool
reaches (GstElement * appsrc, GstElement * appsink, guint8 tag)
{
  for (int i = 0; i < 20; i++) {
    push (appsrc, tag);
    GstBuffer *b = pull (appsink, 250 * GST_MSECOND, tag);
    if (b) {
      gst_buffer_unref (b);
      return true;
    }
  }
  return false;
}

/* The next element message @name from @p within @timeout, with
 * "connected" == @connected unless that is -1; nullptr when none. */
static GstMessage *
next_message (GstElement * p, const char *name, int connected, GstClockTime timeout)
{
  GstBus *bus = gst_element_get_bus (p);
  gint64 end = g_get_monotonic_time () + timeout / 1000;
  GstMessage *found = nullptr;
  while (!found && g_get_monotonic_time () < end) {
    GstMessage *m = gst_bus_timed_pop_filtered (bus, 20 * GST_MSECOND, GST_MESSAGE_ELEMENT);
    if (!m)
      continue;
    const GstStructure *s = gst_message_get_structure (m);
    gboolean c = FALSE;
    if (gst_structure_has_name (s, name)
        && (connected < 0 || (gst_structure_get_boolean (s, "connected", &c) && c == connected)))
      found = m;
    else
      gst_message_unref (m);
  }
  gst_object_unref (bus);
  return found;
}

/* Waits for a connection message; returns its reason and connection-id. */
static bool
connection_message (GstElement * p, gboolean connected, GstClockTime timeout, std::string * reason = nullptr,
    guint64 * conn = nullptr)
{
  GstMessage *m = next_message (p, "wayray-quic-connection", connected, timeout);
  if (!m)
    return false;
  const GstStructure *s = gst_message_get_structure (m);
  if (reason)
    *reason = gst_structure_get_string (s, "reason");
  if (conn)
    fail_unless (gst_structure_get_uint64 (s, "connection-id", conn));
  gst_message_unref (m);
  return true;
}

static gboolean
flag (GstElement * e, const char *prop)
{
  gboolean v = FALSE;
  g_object_get (e, prop, &v, nullptr);
  return v;
}

static guint64
stat (GstElement * e, const char *field)
{
  GstStructure *s = nullptr;
  guint64 v = 0;
  g_object_get (e, "stats", &s, nullptr);
  fail_unless (s && gst_structure_get_uint64 (s, field, &v), "no %s in the stats", field);
  gst_structure_free (s);
  return v;
}

static gboolean
admit (GstElement * server_element, guint64 conn)
{
  gboolean ok = FALSE;
  g_signal_emit_by_name (server_element, "admit", conn, &ok);
  return ok;
}

/* @p sends a ticket; the server's application gets it with the meta naming
 * the connection (not admitted, from 127.0.0.1). Returns the connection's
 * id. */
static guint64
knock (Server & srv, Peer & p, guint8 tag)
{
  push (p.ticket, tag);
  GstBuffer *b = pull (srv.tickets, 10 * GST_SECOND, tag);
  fail_unless (b != nullptr, "ticket %u did not reach the server's application", tag);
  GstCustomMeta *m = gst_buffer_get_custom_meta (b, META);
  fail_unless (m != nullptr, "the ticket carries no " META);
  const GstStructure *s = gst_custom_meta_get_structure (m);
  fail_unless (gst_structure_has_name (s, "wayray-connection"), "meta structure %s", gst_structure_get_name (s));
  guint64 id = 0;
  gboolean admitted = TRUE;
  fail_unless (gst_structure_get_uint64 (s, "id", &id) && id != 0, "no connection id in %" GST_PTR_FORMAT, s);
  fail_unless (gst_structure_get_boolean (s, "admitted", &admitted));
  fail_if (admitted, "a connection not admitted yet is marked admitted");
  const gchar *peer = gst_structure_get_string (s, "peer");
  fail_unless (peer && g_str_has_prefix (peer, "127.0.0.1:") && atoi (peer + 10) > 0, "peer '%s'",
      peer ? peer : "(none)");
  gst_buffer_unref (b);
  return id;
}

/* The server admits connection @id of @p, which hears so. */
static void
admit_and_wait (Server & srv, Peer & p, guint64 id)
{
  fail_unless (admit (srv.sink, id), "admit (%" G_GUINT64_FORMAT ") failed", id);
  GstMessage *m = next_message (p.pipe, "wayray-quic-admitted", -1, 5 * GST_SECOND);
  fail_unless (m != nullptr, "the client was not told it is admitted");
  fail_unless (GST_MESSAGE_SRC (m) == GST_OBJECT (p.src));
  gst_message_unref (m);
  fail_unless (flag (p.src, "admitted"));
}

/* Counts upstream events that leave a server's sink pad: navigation and
 * the custom "wayray-test-ping". */
struct Upstream {
  std::atomic<int> nav { 0 }, ping { 0 };
  GstPad *pad;

  explicit Upstream (GstElement * appsrc)
  {
    pad = gst_element_get_static_pad (appsrc, "src");
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, probe, this, nullptr);
  }
  ~Upstream () { gst_object_unref (pad); }
  static GstPadProbeReturn probe (GstPad *, GstPadProbeInfo * info, gpointer data)
  {
    auto *self = static_cast<Upstream *> (data);
    GstEvent *e = GST_PAD_PROBE_INFO_EVENT (info);
    if (GST_EVENT_TYPE (e) == GST_EVENT_NAVIGATION)
      self->nav++;
    else if (gst_event_has_name (e, "wayray-test-ping"))
      self->ping++;
    return GST_PAD_PROBE_OK;
  }
  bool wait_both (guint ms)
  {
    for (guint t = 0; t < ms && (nav == 0 || ping == 0); t += 10)
      g_usleep (10000);
    return nav > 0 && ping > 0;
  }
};

/* A key press and a custom event sent upstream from @appsink, i.e. into
 * the client's quicsrc pad linked to it; TRUE when the client sent both. */
static bool
send_input (GstElement * appsink)
{
  GstPad *pad = gst_element_get_static_pad (appsink, "sink");
  bool ok = gst_pad_push_event (pad, gst_navigation_event_new_key_press ("a", GST_NAVIGATION_MODIFIER_NONE));
  ok = gst_pad_push_event (pad, gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM,
          gst_structure_new_empty ("wayray-test-ping"))) && ok;
  gst_object_unref (pad);
  return ok;
}

/* admission=application: a ticket arrives with the connection's meta, the
 * server is not "connected" and sends no media until the application
 * admits; then the client hears so and gets the media. */
GST_START_TEST (test_application_admits)
{
  Site site;
  Server srv (site, "admission=application");
  Peer a (site, "127.0.0.1");
  guint64 id = knock (srv, a, 1);
  fail_if (flag (srv.sink, "connected"), "quicsink connected before admission");
  fail_if (flag (srv.src, "connected"), "quicsrc connected before admission");
  fail_if (flag (a.src, "admitted"));
  fail_if (connection_message (srv.pipe, TRUE, 200 * GST_MSECOND), "the server posted connected before admission");
  push (srv.disp, 2);
  fail_unless (nothing_arrives (a.display, 500 * GST_MSECOND), "media reached a client not admitted");

  admit_and_wait (srv, a, id);
  guint64 up_id = 0;
  fail_unless (connection_message (srv.pipe, TRUE, 5 * GST_SECOND, nullptr, &up_id));
  fail_unless_equals_uint64 (up_id, id);
  fail_unless (flag (srv.sink, "connected"));
  fail_unless (reaches (srv.disp, a.display, 3), "no media after admission");
  fail_unless (admit (srv.sink, id), "admitting the admitted connection again");
  fail_if (admit (srv.sink, id + 1000), "admitted a connection that does not exist");
  assert_no_error (srv.pipe);
  assert_no_error (a.pipe);
}
GST_END_TEST;

/* A second client that knocks displaces no one: the first keeps media and
 * input, the second gets nothing, until the application admits it; then
 * the first is closed as replaced and the second gets the media. */
GST_START_TEST (test_second_client_waits)
{
  Site site;
  Server srv (site, "admission=application");
  Upstream up (srv.disp);
  Peer a (site, "127.0.0.1");
  guint64 ida = knock (srv, a, 1);
  admit_and_wait (srv, a, ida);
  fail_unless (reaches (srv.disp, a.display, 2));

  Peer b (site, "127.1");
  fail_unless (connection_message (b.pipe, TRUE, 10 * GST_SECOND), "B's handshake did not complete");
  guint64 idb = knock (srv, b, 3);
  fail_if (idb == ida);
  fail_unless (reaches (srv.disp, a.display, 4), "A lost the media when B knocked");
  fail_unless (nothing_arrives (b.display, 500 * GST_MSECOND), "media reached B, not admitted");
  fail_unless (send_input (a.display));
  fail_unless (up.wait_both (5000), "A's input (navigation %d, custom %d) no longer reaches the server",
      up.nav.load (), up.ping.load ());
  fail_unless (flag (a.src, "connected") && flag (srv.sink, "connected"));
  fail_if (flag (b.src, "admitted"));

  admit_and_wait (srv, b, idb);
  std::string reason;
  fail_unless (connection_message (a.pipe, FALSE, 5 * GST_SECOND, &reason), "A was not closed");
  fail_unless (reason.find ("replaced") != std::string::npos, "A's reason: '%s'", reason.c_str ());
  guint64 gone = 0;
  fail_unless (connection_message (srv.pipe, FALSE, 5 * GST_SECOND, nullptr, &gone));
  fail_unless_equals_uint64 (gone, ida);
  fail_unless (reaches (srv.disp, b.display, 5), "B gets no media once admitted");
  assert_no_error (srv.pipe);
  assert_no_error (b.pipe);
}
GST_END_TEST;

/* Before admission only the streams in unadmitted-streams reach the
 * application, and input is dropped; once admitted, input arrives. */
GST_START_TEST (test_unadmitted_streams_and_input)
{
  Site site;
  Server srv (site, "admission=application");
  Upstream up (srv.reply);
  Peer a (site, "127.0.0.1");
  guint64 id = knock (srv, a, 1);
  push (a.mic, 2);
  push (a.ticket, 3);
  GstBuffer *t = pull (srv.tickets, 5 * GST_SECOND, 3);
  fail_unless (t != nullptr, "A's second ticket did not arrive");
  gst_buffer_unref (t);
  g_usleep (G_USEC_PER_SEC);
  GstPad *mic = gst_element_get_static_pad (srv.src, "microphone");
  fail_if (mic != nullptr, "a stream not in unadmitted-streams reached the application before admission");
  gst_clear_object (&mic);

  /* An answer to A gives its quicsrc a pad ("welcome") to send input from. */
  push (srv.reply, 4, id);
  GstBuffer *w = pull (a.welcome, 5 * GST_SECOND, 4);
  fail_unless (w != nullptr, "the answer to A did not arrive");
  gst_buffer_unref (w);
  fail_unless (send_input (a.welcome), "A could not send its input");
  g_usleep (G_USEC_PER_SEC);
  fail_unless (up.nav == 0 && up.ping == 0, "input of a connection not admitted reached the server "
      "(navigation %d, custom %d)", up.nav.load (), up.ping.load ());

  admit_and_wait (srv, a, id);
  fail_unless (send_input (a.welcome));
  fail_unless (up.wait_both (5000), "input does not arrive after admission");
  assert_no_error (srv.pipe);
  assert_no_error (a.pipe);
}
GST_END_TEST;

/* A buffer with a WayrayConnectionMeta goes to that connection only (not
 * admitted, on a stream of its own); one for a connection that does not
 * exist is dropped. */
GST_START_TEST (test_reply_to_one_connection)
{
  Site site;
  Server srv (site, "admission=application");
  Peer a (site, "127.0.0.1"), b (site, "127.1");
  guint64 ida = knock (srv, a, 1), idb = knock (srv, b, 2);
  fail_if (ida == idb);

  push (srv.reply, 10, ida);
  GstBuffer *r = pull (a.welcome, 5 * GST_SECOND);
  fail_unless (r != nullptr, "A got no answer");
  guint8 got = 0;
  gst_buffer_extract (r, 0, &got, 1);
  fail_unless_equals_int (got, 10);
  gst_buffer_unref (r);
  fail_unless (nothing_arrives (b.welcome, GST_SECOND), "A's answer reached B");

  push (srv.reply, 11, idb);
  push (srv.reply, 12, idb + ida + 1000);
  push (srv.reply, 13, ida);
  fail_unless ((r = pull (b.welcome, 5 * GST_SECOND, 11)) != nullptr, "B got no answer");
  gst_buffer_unref (r);
  fail_unless ((r = pull (a.welcome, 5 * GST_SECOND)) != nullptr, "A got no second answer");
  gst_buffer_extract (r, 0, &got, 1);
  fail_unless_equals_int (got, 13);
  gst_buffer_unref (r);
  fail_unless (nothing_arrives (a.welcome, 300 * GST_MSECOND) && nothing_arrives (b.welcome, 300 * GST_MSECOND),
      "an answer reached the wrong client");
  fail_if (flag (srv.sink, "connected") || flag (a.src, "admitted") || flag (b.src, "admitted"),
      "answering admitted a connection");
  assert_no_error (srv.pipe);
  assert_no_error (a.pipe);
  assert_no_error (b.pipe);
}
GST_END_TEST;

/* A client not admitted within admission-timeout is closed and told why;
 * one admitted in time stays. */
GST_START_TEST (test_admission_timeout)
{
  Site site;
  Server srv (site, "admission=application admission-timeout=700");
  Peer a (site, "127.0.0.1"), b (site, "127.1");
  fail_unless (connection_message (a.pipe, TRUE, 10 * GST_SECOND), "A's handshake did not complete");
  gint64 t0 = g_get_monotonic_time ();
  admit_and_wait (srv, b, knock (srv, b, 1));
  std::string reason;
  fail_unless (connection_message (a.pipe, FALSE, 5 * GST_SECOND, &reason), "A was not closed");
  gint64 after = (g_get_monotonic_time () - t0) / 1000;
  fail_unless (reason.find ("not admitted") != std::string::npos, "A's reason: '%s'", reason.c_str ());
  fail_unless (after < 3000, "closed only after %" G_GINT64_FORMAT " ms", after);
  fail_if (flag (a.src, "connected"));
  g_usleep (300000);
  fail_unless (flag (b.src, "connected") && flag (srv.sink, "connected"), "the admitted client was closed too");
  fail_unless (reaches (srv.disp, b.display, 2));
  assert_no_error (b.pipe);
}
GST_END_TEST;

/* retry=always: every client proves its address with a Retry first, and
 * still connects (admission=open: admitted at once). */
GST_START_TEST (test_retry_always)
{
  Site site;
  Server srv (site, "retry=always");
  Peer a (site, "127.0.0.1");
  GstMessage *m = next_message (a.pipe, "wayray-quic-admitted", -1, 10 * GST_SECOND);
  fail_unless (m != nullptr, "the client was not admitted");
  gst_message_unref (m);
  fail_unless (reaches (srv.disp, a.display, 1));
  guint64 retries = stat (srv.sink, "retries-sent");
  fail_unless (retries >= 1, "retries-sent %" G_GUINT64_FORMAT, retries);
  assert_no_error (srv.pipe);
  assert_no_error (a.pipe);
}
GST_END_TEST;

/* Spoofed Initials from many addresses (wr-quic-flood, never answering)
 * against a server with the default bounds: a real client still connects
 * and is admitted within a few seconds; handshakes stay within
 * max-handshakes; the flood was met with Retries or refusals. */
GST_START_TEST (test_flood_keeps_no_one_out)
{
  const gchar *tool = g_getenv ("WR_QUIC_FLOOD");
  if (!tool || !g_file_test (tool, G_FILE_TEST_IS_EXECUTABLE)) {
    GST_WARNING ("WR_QUIC_FLOOD is not set to wr-quic-flood: skipping the flood test");
    return;
  }
  Site site;
  Server srv (site, "");
  guint max_handshakes = 0;
  g_object_get (srv.sink, "max-handshakes", &max_handshakes, nullptr);
  std::string port = std::to_string (site.port);
  const gchar *argv[] = { tool, "127.0.0.1", port.c_str (), "--rate", "1000", "--duration", "2", "--sources",
    "200", nullptr };
  std::atomic<bool> done { false };
  gint status = -1;
  gchar *out = nullptr, *err = nullptr;
  /* The tool is only the load: under the sanitizers, a report of its own
   * (kept in the log) does not stop it. */
  gchar **envp = g_environ_setenv (g_get_environ (), "UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=0", TRUE);
  std::thread flood ([&] {
    g_spawn_sync (nullptr, (gchar **) argv, envp, G_SPAWN_DEFAULT, nullptr, nullptr, &out, &err, &status, nullptr);
    done = true;
  });
  g_usleep (300000);

  gint64 t0 = g_get_monotonic_time ();
  Peer a (site, "127.0.0.1");
  GstMessage *m = next_message (a.pipe, "wayray-quic-admitted", -1, 5 * GST_SECOND);
  gint64 took = (g_get_monotonic_time () - t0) / 1000;
  fail_unless (m != nullptr, "the real client was not admitted during the flood");
  gst_message_unref (m);
  GST_INFO ("admitted after %" G_GINT64_FORMAT " ms of flood", took);
  guint64 peak = 0;
  while (!done) {
    peak = MAX (peak, stat (srv.sink, "handshakes"));
    g_usleep (20000);
  }
  flood.join ();
  g_strfreev (envp);
  GST_INFO ("wr-quic-flood: %s%s", out ? out : "", err ? err : "");
  fail_unless (g_spawn_check_wait_status (status, nullptr), "wr-quic-flood failed: %s", err ? err : "");
  g_free (out);
  g_free (err);
  fail_unless (reaches (srv.disp, a.display, 1), "the real client gets no media");
  guint64 refused = stat (srv.sink, "refused-initials"), retries = stat (srv.sink, "retries-sent");
  GST_INFO ("handshakes peaked at %" G_GUINT64_FORMAT "; %" G_GUINT64_FORMAT " Initials refused, %"
      G_GUINT64_FORMAT " Retries", peak, refused, retries);
  fail_unless (peak <= max_handshakes, "%" G_GUINT64_FORMAT " handshakes at once, max-handshakes %u", peak,
      max_handshakes);
  fail_unless (refused + retries > 0, "the flood met neither Retries nor refusals");
  assert_no_error (srv.pipe);
  assert_no_error (a.pipe);
}
GST_END_TEST;

static Suite *
quicadmission_suite (void)
{
  Suite *s = suite_create ("quicadmission");
  TCase *tc = tcase_create ("admission");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_application_admits);
  tcase_add_test (tc, test_second_client_waits);
  tcase_add_test (tc, test_unadmitted_streams_and_input);
  tcase_add_test (tc, test_reply_to_one_connection);
  tcase_add_test (tc, test_admission_timeout);
  tcase_add_test (tc, test_retry_always);
  tcase_add_test (tc, test_flood_keeps_no_one_out);
  return s;
}

GST_CHECK_MAIN (quicadmission);
