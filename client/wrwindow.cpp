/* The window client's window (see wrwindow.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrwindow.h"

#include <gtk/gtk.h>
#ifdef GDK_WINDOWING_X11
#include <gdk/gdkx.h>
#endif

#include <cstring>

namespace wayray {

namespace {

/* Clipboard targets offered to the desktop, by what they carry. */
enum TargetInfo : guint { kText = 0, kPng = 1 };

GdkAtom
selection_atom (Selection sel)
{
  return sel == Selection::Primary ? GDK_SELECTION_PRIMARY : GDK_SELECTION_CLIPBOARD;
}

}  // namespace

struct ToolkitWindow::Impl {
  Callbacks cb;
  GtkWidget *window = nullptr, *overlay = nullptr, *status = nullptr;
  GtkWidget *picture = nullptr;      /* gtksink's widget */
  GtkWidget *secret = nullptr;       /* the PIN entry, while one is asked for */
  std::function<void (const std::string &)> secret_done;
  bool is_fullscreen = false;
  GdkSeat *grabbed = nullptr;        /* the keyboard, while full screen */
  int last_w = 0, last_h = 0;
  gulong owner_change[2] = { 0, 0 };
  /* A fetch in progress for a desktop paste (the nested wait's state). */
  struct Paste {
    bool done = false;
    GBytes *data = nullptr;
    std::string error;
  };

  GtkClipboard *clipboard (Selection sel) const {
    return gtk_clipboard_get_for_display (gtk_widget_get_display (window), selection_atom (sel));
  }
  Selection selection_of (GtkClipboard *cb) const {
    return cb == clipboard (Selection::Primary) ? Selection::Primary : Selection::Clipboard;
  }

  void grab_keyboard (bool on);
  void on_size (int w, int h);
  void desktop_selection_changed (GtkClipboard *cb);
};

ToolkitWindow::ToolkitWindow () : impl_ (new Impl ()) {}

ToolkitWindow::~ToolkitWindow ()
{
  Impl *p = impl_.get ();
  if (!p->window)
    return;
  p->grab_keyboard (false);
  for (Selection sel : { Selection::Clipboard, Selection::Primary }) {
    GtkClipboard *cb = p->clipboard (sel);
    if (p->owner_change[(int) sel])
      g_signal_handler_disconnect (cb, p->owner_change[(int) sel]);
    /* What the session offered is gone with it: stores nothing. */
    if (gtk_clipboard_get_owner (cb) == G_OBJECT (p->window))
      gtk_clipboard_clear (cb);
  }
  gtk_widget_destroy (p->window);
}

bool
ToolkitWindow::toolkit_ready ()
{
  /* gtk_init_check opens the default display; it may be called again
   * after it failed. */
  return gtk_init_check (nullptr, nullptr);
}

ClientKeymap
ToolkitWindow::toolkit_keymap ()
{
  ClientKeymap km;
#ifdef GDK_WINDOWING_X11
  GdkDisplay *display = gdk_display_get_default ();
  if (!display || !GDK_IS_X11_DISPLAY (display))
    return km;
  /* "rules\0model\0layout\0variant\0options\0", as the X server keeps it. */
  GdkAtom type = GDK_NONE;
  gint format = 0, length = 0;
  guchar *data = nullptr;
  if (!gdk_property_get (gdk_get_default_root_window (), gdk_atom_intern_static_string ("_XKB_RULES_NAMES"),
          GDK_NONE, 0, 1024, FALSE, &type, &format, &length, &data) || !data || format != 8) {
    g_free (data);
    return km;
  }
  std::vector<std::string> fields;
  for (gint i = 0; i < length;) {
    const char *s = reinterpret_cast<const char *> (data) + i;
    size_t n = strnlen (s, length - i);
    fields.emplace_back (s, n);
    i += n + 1;
  }
  g_free (data);
  if (fields.size () >= 3) {
    km.layout = fields[2];
    km.variant = fields.size () > 3 ? fields[3] : "";
    km.options = fields.size () > 4 ? fields[4] : "";
  }
#endif
  return km;
}

void
ToolkitWindow::Impl::grab_keyboard (bool on)
{
  if (!on) {
    if (grabbed)
      gdk_seat_ungrab (grabbed);
    grabbed = nullptr;
    return;
  }
  GdkWindow *w = gtk_widget_get_window (window);
  GdkSeat *seat = gdk_display_get_default_seat (gtk_widget_get_display (window));
  if (!grabbed && w && seat &&
      gdk_seat_grab (seat, w, GDK_SEAT_CAPABILITY_KEYBOARD, FALSE, nullptr, nullptr, nullptr, nullptr) ==
          GDK_GRAB_SUCCESS)
    grabbed = seat;
}

void
ToolkitWindow::Impl::on_size (int w, int h)
{
  if (w == last_w && h == last_h)
    return;
  last_w = w;
  last_h = h;
  if (cb.resized)
    cb.resized (w, h);
}

/* The desktop's selection changed: unless it is the session's own offer,
 * tell the session which of the clipboard's types it has. */
void
ToolkitWindow::Impl::desktop_selection_changed (GtkClipboard *cb_)
{
  if (gtk_clipboard_get_owner (cb_) == G_OBJECT (window))
    return;
  Selection sel = selection_of (cb_);
  struct Ask {
    Impl *p;
    Selection sel;
  };
  gtk_clipboard_request_targets (cb_, [] (GtkClipboard *, GdkAtom *atoms, gint n, gpointer data) {
        Ask *ask = static_cast<Ask *> (data);
        std::vector<std::string> types;
        for (gint i = 0; i < n; i++) {
          gchar *name = gdk_atom_name (atoms[i]);
          types.emplace_back (name);
          g_free (name);
        }
        if (ask->p->cb.offered)
          ask->p->cb.offered (ask->sel, clipboard_types (types));
        delete ask;
      }, new Ask { this, sel });
}

bool
ToolkitWindow::open (GstElement *gtksink, const std::string &title, int width, int height, Callbacks callbacks)
{
  Impl *p = impl_.get ();
  p->cb = std::move (callbacks);
  GtkWidget *widget = nullptr;
  g_object_get (gtksink, "widget", &widget, nullptr);
  if (!widget)
    return false;
  p->picture = widget;

  p->window = gtk_window_new (GTK_WINDOW_TOPLEVEL);
  gtk_window_set_title (GTK_WINDOW (p->window), title.c_str ());
  gtk_window_set_default_size (GTK_WINDOW (p->window), width, height);
  p->overlay = gtk_overlay_new ();
  gtk_container_add (GTK_CONTAINER (p->overlay), widget);
  g_object_unref (widget);

  /* The status: a label over the middle of the picture, on a dark band. */
  p->status = gtk_label_new ("");
  gtk_widget_set_halign (p->status, GTK_ALIGN_CENTER);
  gtk_widget_set_valign (p->status, GTK_ALIGN_CENTER);
  gtk_label_set_justify (GTK_LABEL (p->status), GTK_JUSTIFY_CENTER);
  gtk_widget_set_no_show_all (p->status, TRUE);
  GtkCssProvider *css = gtk_css_provider_new ();
  gtk_css_provider_load_from_data (css,
      "label { background-color: rgba(0,0,0,0.7); color: white; padding: 12px 18px; border-radius: 6px; }", -1,
      nullptr);
  gtk_style_context_add_provider (gtk_widget_get_style_context (p->status), GTK_STYLE_PROVIDER (css),
      GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
  g_object_unref (css);
  gtk_overlay_add_overlay (GTK_OVERLAY (p->overlay), p->status);

  /* The PIN entry: hidden until asked for, below the status. */
  p->secret = gtk_entry_new ();
  gtk_entry_set_visibility (GTK_ENTRY (p->secret), FALSE);
  gtk_entry_set_max_length (GTK_ENTRY (p->secret), 64);
  gtk_entry_set_input_purpose (GTK_ENTRY (p->secret), GTK_INPUT_PURPOSE_PIN);
  gtk_widget_set_halign (p->secret, GTK_ALIGN_CENTER);
  gtk_widget_set_valign (p->secret, GTK_ALIGN_CENTER);
  gtk_widget_set_margin_top (p->secret, 120);
  gtk_widget_set_no_show_all (p->secret, TRUE);
  g_signal_connect (p->secret, "activate", G_CALLBACK (+[] (GtkEntry *entry, gpointer data) {
        Impl *impl = static_cast<Impl *> (data);
        std::string text = gtk_entry_get_text (entry);
        gtk_entry_set_text (entry, "");
        gtk_widget_hide (impl->secret);
        auto done = std::move (impl->secret_done);
        impl->secret_done = nullptr;
        if (done)
          done (text);
      }), p);
  gtk_overlay_add_overlay (GTK_OVERLAY (p->overlay), p->secret);
  gtk_container_add (GTK_CONTAINER (p->window), p->overlay);

  /* F11 belongs to the window (full screen); every other key goes to the
   * picture, and from there to the session. */
  g_signal_connect (p->window, "key-press-event", G_CALLBACK (+[] (GtkWidget *, GdkEventKey *ev, gpointer data) {
        auto self = static_cast<ToolkitWindow *> (data);
        if (ev->keyval != GDK_KEY_F11)
          return (gboolean) FALSE;
        self->set_fullscreen (!self->fullscreen ());
        return (gboolean) TRUE;
      }), this);
  g_signal_connect (p->window, "key-release-event", G_CALLBACK (+[] (GtkWidget *, GdkEventKey *ev, gpointer) {
        return (gboolean) (ev->keyval == GDK_KEY_F11);
      }), nullptr);
  g_signal_connect (p->window, "window-state-event", G_CALLBACK (+[] (GtkWidget *, GdkEventWindowState *ev,
          gpointer data) {
        Impl *p = static_cast<Impl *> (data);
        p->is_fullscreen = (ev->new_window_state & GDK_WINDOW_STATE_FULLSCREEN) != 0;
        /* Full screen, the session has the whole keyboard (Alt+Tab,
         * the window manager's keys); a window shares it. */
        p->grab_keyboard (p->is_fullscreen && (ev->new_window_state & GDK_WINDOW_STATE_FOCUSED));
        return (gboolean) FALSE;
      }), p);
  g_signal_connect (p->window, "delete-event", G_CALLBACK (+[] (GtkWidget *, GdkEvent *, gpointer data) {
        Impl *p = static_cast<Impl *> (data);
        if (p->cb.closed)
          p->cb.closed ();
        return (gboolean) TRUE;     /* the client ends, and destroys it */
      }), p);
  g_signal_connect (widget, "size-allocate", G_CALLBACK (+[] (GtkWidget *w, GdkRectangle *a, gpointer data) {
        Impl *p = static_cast<Impl *> (data);
        int scale = gtk_widget_get_scale_factor (w);
        p->on_size (a->width * scale, a->height * scale);
      }), p);

  for (Selection sel : { Selection::Clipboard, Selection::Primary })
    p->owner_change[(int) sel] = g_signal_connect (p->clipboard (sel), "owner-change",
        G_CALLBACK (+[] (GtkClipboard *cb, GdkEvent *, gpointer data) {
          static_cast<Impl *> (data)->desktop_selection_changed (cb);
        }), p);

  gtk_widget_show_all (p->window);
  gtk_widget_grab_focus (widget);
  /* What the desktop holds already. */
  for (Selection sel : { Selection::Clipboard, Selection::Primary })
    p->desktop_selection_changed (p->clipboard (sel));
  return true;
}

void
ToolkitWindow::set_status (const std::string &text)
{
  Impl *p = impl_.get ();
  if (!p->status)
    return;
  gtk_label_set_text (GTK_LABEL (p->status), text.c_str ());
  gtk_widget_set_visible (p->status, !text.empty ());
}

void
ToolkitWindow::ask_secret (std::function<void (const std::string &)> done)
{
  Impl *p = impl_.get ();
  if (!p->secret)
    return;
  p->secret_done = std::move (done);
  gtk_entry_set_text (GTK_ENTRY (p->secret), "");
  gtk_widget_set_visible (p->secret, p->secret_done != nullptr);
  if (p->secret_done)
    gtk_widget_grab_focus (p->secret);
  else if (p->picture)
    gtk_widget_grab_focus (p->picture);
}

void
ToolkitWindow::set_fullscreen (bool on)
{
  Impl *p = impl_.get ();
  if (!p->window)
    return;
  if (on)
    gtk_window_fullscreen (GTK_WINDOW (p->window));
  else
    gtk_window_unfullscreen (GTK_WINDOW (p->window));
}

bool
ToolkitWindow::fullscreen () const
{
  return impl_->is_fullscreen;
}

void
ToolkitWindow::session_offered (Selection sel, const std::vector<std::string> &types)
{
  Impl *p = impl_.get ();
  if (!p->window)
    return;
  GtkClipboard *cb = p->clipboard (sel);
  GtkTargetList *list = gtk_target_list_new (nullptr, 0);
  for (const std::string &t : types) {
    if (t == kClipboardText)
      gtk_target_list_add_text_targets (list, kText);
    else if (t == kClipboardPng)
      gtk_target_list_add (list, gdk_atom_intern_static_string (kClipboardPng), 0, kPng);
  }
  gint n = 0;
  GtkTargetEntry *targets = gtk_target_table_new_from_list (list, &n);
  gtk_target_list_unref (list);
  if (n == 0) {
    /* The session's selection is gone: so is the desktop's copy of it. */
    if (gtk_clipboard_get_owner (cb) == G_OBJECT (p->window))
      gtk_clipboard_clear (cb);
    gtk_target_table_free (targets, n);
    return;
  }
  /* A desktop application pastes: the bytes are fetched from the session
   * then, and GTK wants them before this returns, so the main loop turns
   * (the client's streams keep flowing) until they come or the fetch
   * times out (kClipboardTimeoutS). */
  auto get = [] (GtkClipboard *cb, GtkSelectionData *out, guint info, gpointer owner) {
    auto self = static_cast<ToolkitWindow *> (g_object_get_data (G_OBJECT (owner), "wayray-window"));
    if (!self || !self->impl_->cb.fetch)
      return;
    Impl *p = self->impl_.get ();
    auto paste = std::make_shared<Impl::Paste> ();
    p->cb.fetch (p->selection_of (cb), info == kPng ? kClipboardPng : kClipboardText,
        [paste] (GBytes *data, const std::string &error) {
          paste->done = true;
          paste->data = data;
          paste->error = error;
        });
    while (!paste->done)
      g_main_context_iteration (nullptr, TRUE);
    if (!paste->data) {
      g_printerr ("wayray-client: a paste of the session's %s failed: %s\n", selection_name (p->selection_of (cb)),
          paste->error.c_str ());
      return;
    }
    gsize len = 0;
    const guchar *bytes = static_cast<const guchar *> (g_bytes_get_data (paste->data, &len));
    if (info == kText)
      gtk_selection_data_set_text (out, reinterpret_cast<const gchar *> (bytes), (gint) len);
    else
      gtk_selection_data_set (out, gtk_selection_data_get_target (out), 8, bytes, (gint) len);
    g_bytes_unref (paste->data);
  };
  g_object_set_data (G_OBJECT (p->window), "wayray-window", this);
  if (!gtk_clipboard_set_with_owner (cb, targets, n, get, [] (GtkClipboard *, gpointer) {}, G_OBJECT (p->window)))
    g_printerr ("wayray-client: could not take the desktop's %s\n", selection_name (sel));
  gtk_target_table_free (targets, n);
}

void
ToolkitWindow::read_desktop (Selection sel, const std::string &type, ClipboardLink::Done done)
{
  Impl *p = impl_.get ();
  if (!p->window) {
    done (nullptr, "no window");
    return;
  }
  GtkClipboard *cb = p->clipboard (sel);
  auto *pending = new ClipboardLink::Done (std::move (done));
  if (type == kClipboardText) {
    gtk_clipboard_request_text (cb, [] (GtkClipboard *, const gchar *text, gpointer data) {
          auto done = static_cast<ClipboardLink::Done *> (data);
          if (text)
            (*done) (g_bytes_new (text, strlen (text)), "");
          else
            (*done) (nullptr, "the desktop's selection has no text any more");
          delete done;
        }, pending);
    return;
  }
  gtk_clipboard_request_contents (cb, gdk_atom_intern_static_string (kClipboardPng),
      [] (GtkClipboard *, GtkSelectionData *sd, gpointer data) {
        auto done = static_cast<ClipboardLink::Done *> (data);
        gint len = sd ? gtk_selection_data_get_length (sd) : -1;
        if (len >= 0)
          (*done) (g_bytes_new (gtk_selection_data_get_data (sd), len), "");
        else
          (*done) (nullptr, "the desktop's selection has no PNG any more");
        delete done;
      }, pending);
}

}  // namespace wayray
