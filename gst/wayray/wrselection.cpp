/* The session's selections (see wrselection.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrselection.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wayray {

namespace {

const char *const kText = "text/plain;charset=utf-8";
const char *const kPng = "image/png";
/* What applications ask text for, in the order we prefer to read it. */
const char *const kTextTypes[] = { "text/plain;charset=utf-8", "UTF8_STRING", "text/plain", "STRING", "TEXT" };

bool
is_text_type (const char *t)
{
  for (const char *k : kTextTypes)
    if (strcmp (t, k) == 0)
      return true;
  return false;
}

std::vector<std::string>
mime_types_of (const wl_array *array)
{
  std::vector<std::string> out;
  const char *const *t = static_cast<const char *const *> (array->data);
  for (size_t i = 0; i < array->size / sizeof (char *); i++)
    out.push_back (t[i]);
  return out;
}

void
add_mime_type (wl_array *array, const char *type)
{
  char **slot = static_cast<char **> (wl_array_add (array, sizeof (char *)));
  if (slot)
    *slot = strdup (type);
}

}  // namespace

/* One pipe to an application: reading its selection, or writing the
 * outside's bytes to it. */
struct Selections::Transfer {
  guint id = 0;
  int fd = -1;
  bool reading = true;
  std::string bytes;
  size_t written = 0;
  wl_event_source *io = nullptr, *timer = nullptr;
  Selections *owner = nullptr;
};

/* The outside's offer as a selection source of the seat: a data source
 * (clipboard) or a primary selection source, each first in its holder. */
struct Selections::Source {
  wlr_data_source data;
  wlr_primary_selection_source primary;
  int sel = 0;
  Selections *owner = nullptr;
  std::vector<std::string> types;   /* what the outside offers: text, png */

  static Source *of (wlr_data_source *d) { return wl_container_of (d, static_cast<Source *> (nullptr), data); }
  static Source *of (wlr_primary_selection_source *p)
  {
    return wl_container_of (p, static_cast<Source *> (nullptr), primary);
  }
  void send (const char *mime, int fd);
  void destroyed ();
};

static const wlr_data_source_impl data_source_impl = {
  /* send */ [] (wlr_data_source *d, const char *mime, int32_t fd) { Selections::Source::of (d)->send (mime, fd); },
  /* accept */ nullptr,
  /* destroy */ [] (wlr_data_source *d) { Selections::Source::of (d)->destroyed (); },
  /* dnd_drop */ nullptr,
  /* dnd_finish */ nullptr,
};

static const wlr_primary_selection_source_impl primary_source_impl = {
  /* send */ [] (wlr_primary_selection_source *p, const char *mime, int fd) {
    Selections::Source::of (p)->send (mime, fd);
  },
  /* destroy */ [] (wlr_primary_selection_source *p) { Selections::Source::of (p)->destroyed (); },
};

void
Selections::Source::send (const char *mime, int fd)
{
  /* An application pastes: ask the outside for the bytes, write them
   * when they come. */
  std::string type = is_text_type (mime) ? kText : mime;
  bool offered = false;
  for (const std::string &t : types)
    offered = offered || t == type;
  if (!offered || !owner) {
    close (fd);
    return;
  }
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK);
  auto t = std::make_unique<Transfer> ();
  t->id = owner->next_write_id_++;
  if (owner->next_write_id_ == 0)
    owner->next_write_id_ = kWriteIds;
  t->fd = fd;
  t->reading = false;
  t->owner = owner;
  t->timer = wl_event_loop_add_timer (owner->loop_, on_timeout, t.get ());
  wl_event_source_timer_update (t->timer, kTimeoutMs);
  guint id = t->id;
  Selections *o = owner;
  o->transfers_[id] = std::move (t);
  if (o->cb_.wanted)
    o->cb_.wanted (sel, type, id);
}

void
Selections::Source::destroyed ()
{
  /* wlroots has freed the type list already. */
  if (owner && owner->sources_[sel] == this)
    owner->sources_[sel] = nullptr;
  delete this;
}

Selections::Selections (wl_display *display, wlr_seat *seat, Callbacks callbacks)
    : display_ (display), loop_ (wl_display_get_event_loop (display)), seat_ (seat), cb_ (std::move (callbacks))
{
  /* The primary selection for applications, and data control for
   * clipboard tools (wl-copy, wl-paste, clipboard managers): all of a
   * session's clients are its user's. */
  wlr_primary_selection_v1_device_manager_create (display);
  wlr_data_control_manager_v1_create (display);
  set_selection_.connect (&seat->events.set_selection, [this] (void *) { seat_selection_changed (0); });
  set_primary_.connect (&seat->events.set_primary_selection, [this] (void *) { seat_selection_changed (1); });
  request_primary_.connect (&seat->events.request_set_primary_selection, [this] (void *data) {
    auto ev = static_cast<wlr_seat_request_set_primary_selection_event *> (data);
    wlr_seat_set_primary_selection (seat_, ev->source, ev->serial);
  });
}

Selections::~Selections ()
{
  std::vector<guint> ids;
  for (auto &t : transfers_)
    ids.push_back (t.first);
  for (guint id : ids)
    end_transfer (id, "the session ended");
  for (Source *s : sources_)
    if (s)
      s->owner = nullptr;
}

void
Selections::seat_selection_changed (int sel)
{
  /* Our own offer becoming the selection is not news for the outside. */
  if (sel == 0) {
    wlr_data_source *d = seat_->selection_source;
    if (d && d->impl == &data_source_impl)
      return;
    if (cb_.changed)
      cb_.changed (0, d ? mime_types_of (&d->mime_types) : std::vector<std::string> ());
  } else {
    wlr_primary_selection_source *p = seat_->primary_selection_source;
    if (p && p->impl == &primary_source_impl)
      return;
    if (cb_.changed)
      cb_.changed (1, p ? mime_types_of (&p->mime_types) : std::vector<std::string> ());
  }
}

void
Selections::offer (int sel, const std::vector<std::string> &types)
{
  if (sel != 0 && sel != 1)
    return;
  if (types.empty ()) {
    /* The outside has nothing now: take back only what was its own. */
    if (sources_[sel]) {
      if (sel == 0)
        wlr_seat_set_selection (seat_, nullptr, wl_display_next_serial (display_));
      else
        wlr_seat_set_primary_selection (seat_, nullptr, wl_display_next_serial (display_));
    }
    return;
  }
  Source *s = new Source ();
  s->sel = sel;
  s->owner = this;
  s->types = types;
  wl_array *mimes;
  if (sel == 0) {
    wlr_data_source_init (&s->data, &data_source_impl);
    mimes = &s->data.mime_types;
  } else {
    wlr_primary_selection_source_init (&s->primary, &primary_source_impl);
    mimes = &s->primary.mime_types;
  }
  for (const std::string &t : types) {
    if (t == kText) {
      for (const char *k : kTextTypes)
        add_mime_type (mimes, k);
    } else {
      add_mime_type (mimes, t.c_str ());
    }
  }
  sources_[sel] = s;
  if (sel == 0)
    wlr_seat_set_selection (seat_, &s->data, wl_display_next_serial (display_));
  else
    wlr_seat_set_primary_selection (seat_, &s->primary, wl_display_next_serial (display_));
}

void
Selections::read (guint id, int sel, const std::string &type)
{
  auto none = [this, id, sel] (const char *why) {
    if (cb_.read_done)
      cb_.read_done (id, nullptr, std::string (sel == 0 ? "the clipboard" : "the primary selection") + why);
  };
  const wl_array *mimes = nullptr;
  if (sel == 0 && seat_->selection_source && seat_->selection_source->impl != &data_source_impl)
    mimes = &seat_->selection_source->mime_types;
  else if (sel == 1 && seat_->primary_selection_source &&
      seat_->primary_selection_source->impl != &primary_source_impl)
    mimes = &seat_->primary_selection_source->mime_types;
  if (!mimes) {
    none (" holds nothing of the session's");
    return;
  }
  std::vector<std::string> offered = mime_types_of (mimes);
  std::string mime;
  if (type == kText) {
    for (const char *k : kTextTypes)
      for (const std::string &o : offered)
        if (mime.empty () && o == k)
          mime = k;
  } else if (type == kPng) {
    for (const std::string &o : offered)
      if (o == kPng)
        mime = kPng;
  }
  if (mime.empty ()) {
    none ((" holds no " + type).c_str ());
    return;
  }
  int fds[2];
  if (pipe2 (fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    none (": no pipe");
    return;
  }
  auto t = std::make_unique<Transfer> ();
  t->id = id;
  t->fd = fds[0];
  t->reading = true;
  t->owner = this;
  t->io = wl_event_loop_add_fd (loop_, fds[0], WL_EVENT_READABLE, on_readable, t.get ());
  t->timer = wl_event_loop_add_timer (loop_, on_timeout, t.get ());
  wl_event_source_timer_update (t->timer, kTimeoutMs);
  /* The source's owner writes into the other end (wlroots closes our
   * copy of it). */
  if (sel == 0)
    wlr_data_source_send (seat_->selection_source, mime.c_str (), fds[1]);
  else
    wlr_primary_selection_source_send (seat_->primary_selection_source, mime.c_str (), fds[1]);
  wl_display_flush_clients (display_);
  transfers_[id] = std::move (t);
}

void
Selections::provide (guint request, GBytes *data)
{
  auto it = transfers_.find (request);
  if (it == transfers_.end () || it->second->reading)
    return;
  if (!data) {
    end_transfer (request, nullptr);
    return;
  }
  Transfer *t = it->second.get ();
  gsize len = 0;
  const char *p = static_cast<const char *> (g_bytes_get_data (data, &len));
  t->bytes.assign (p ? p : "", len);
  t->io = wl_event_loop_add_fd (loop_, t->fd, WL_EVENT_WRITABLE, on_writable, t);
}

int
Selections::on_readable (int fd, uint32_t mask, void *data)
{
  auto *t = static_cast<Transfer *> (data);
  char buf[65536];
  for (;;) {
    ssize_t n = ::read (fd, buf, sizeof buf);
    if (n > 0) {
      if (t->bytes.size () + n > kMaxBytes) {
        t->owner->end_transfer (t->id, "larger than 16 MiB");
        return 0;
      }
      t->bytes.append (buf, n);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !(mask & (WL_EVENT_HANGUP | WL_EVENT_ERROR)))
      return 0;
    /* End of the data (or the application's error). */
    t->owner->end_transfer (t->id, n < 0 ? "the application's pipe failed" : nullptr);
    return 0;
  }
}

int
Selections::on_writable (int fd, uint32_t mask, void *data)
{
  auto *t = static_cast<Transfer *> (data);
  while (t->written < t->bytes.size ()) {
    ssize_t n = ::write (fd, t->bytes.data () + t->written, t->bytes.size () - t->written);
    if (n > 0) {
      t->written += n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    break;              /* the application closed its end */
  }
  t->owner->end_transfer (t->id, nullptr);
  return 0;
}

int
Selections::on_timeout (void *data)
{
  auto *t = static_cast<Transfer *> (data);
  t->owner->end_transfer (t->id, "no answer within 10 s");
  return 0;
}

void
Selections::end_transfer (guint id, const char *error)
{
  auto it = transfers_.find (id);
  if (it == transfers_.end ())
    return;
  std::unique_ptr<Transfer> t = std::move (it->second);
  transfers_.erase (it);
  if (t->io)
    wl_event_source_remove (t->io);
  if (t->timer)
    wl_event_source_remove (t->timer);
  if (t->fd >= 0)
    close (t->fd);
  if (t->reading && cb_.read_done) {
    if (error)
      cb_.read_done (id, nullptr, error);
    else
      cb_.read_done (id, g_bytes_new (t->bytes.data (), t->bytes.size ()), "");
  }
}

}  // namespace wayray
