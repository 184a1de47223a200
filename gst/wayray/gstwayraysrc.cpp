/* wayraysrc: a WayRay session compositor as a live video source.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-wayraysrc
 * @title: wayraysrc
 *
 * A live source that is a headless Wayland compositor (wlroots 0.15).
 * Applications connect to its Wayland socket like to any desktop; the element
 * pushes a frame only when something on screen changed, each frame carrying
 * a #GstWayrayDamageMeta with the changed rectangles. Nothing changes, nothing
 * is pushed.
 *
 * Window policy is kiosk-like: every toplevel fills the output, the newest is
 * on top and has the keyboard focus; popups are kept inside the output.
 *
 * Output size and frame rate follow the negotiated caps (1920x1080 at 60
 * frames per second when downstream does not care); renegotiation resizes the
 * output and the windows on it. The first frame, and the first after an
 * upstream force-key-unit event, is fully damaged.
 *
 * Upstream navigation events are injected into the session's seat: pointer
 * motion (stream coordinates), buttons (1 left, 2 middle, 3 right, 8 back,
 * 9 forward; 4-7 scroll), mouse-scroll, key presses and releases. Keys carry a
 * keysym name (as stock video sinks send them) mapped through the session's
 * keymap; a navigation structure with an extra `keycode` field (G_TYPE_UINT,
 * a Linux evdev key code such as 30 for KEY_A) is used as is, which is exact
 * whatever the layout.
 *
 * The pointer image and position are published downstream as serialized
 * custom events named `wayray-cursor` (see gstwayraycursor.h): the image
 * (premultiplied BGRA, with hotspot and a serial) only when it changes, the
 * position on every move, so a client draws the cursor locally. Frames do not
 * contain the cursor.
 *
 * On start the element posts an element message `wayraysrc-socket` with the
 * fields `socket-name`, `socket-path` and `runtime-dir`; when the `exec`
 * command ends, `wayraysrc-exec-exited` with `pid`, `status` and (for a normal
 * exit) `exit-code`.
 *
 * The Wayland socket is created in `$XDG_RUNTIME_DIR`, which must be set.
 * Without a GPU the pixman renderer draws straight into the pushed buffers.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 wayraysrc exec=foot ! videoconvert ! autovideosink
 * ]| A terminal in a session, shown in a window.
 * |[
 * gst-launch-1.0 wayraysrc socket-name=wayray-1 ! video/x-raw,width=1280,height=720,framerate=30/1 ! videoconvert ! autovideosink
 * ]| An empty 1280x720 session; start applications with WAYLAND_DISPLAY=wayray-1.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstwayraysrc.h"

#include "gstwayraycursor.h"
#include "gstwayraydamagemeta.h"
#include "wrcompositor.h"

#include <gst/video/navigation.h>
#include <gst/video/video.h>
#include <sys/wait.h>

#include <cmath>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

GST_DEBUG_CATEGORY_STATIC (gst_wayray_src_debug);
#define GST_CAT_DEFAULT gst_wayray_src_debug

enum
{
  PROP_0,
  PROP_SOCKET_NAME,
  PROP_EXEC,
  PROP_EXEC_ENVIRONMENT,
  PROP_KEYMAP_LAYOUT,
  PROP_KEYMAP_VARIANT,
  PROP_KEYMAP_OPTIONS,
  PROP_KEYMAP_MODEL,
  PROP_RENDERER,
  PROP_SCALE,
  PROP_MONITORS,
  PROP_XWAYLAND,
  PROP_FRAMES_PUSHED,
  PROP_FRAMES_RENDERED,
  PROP_EXEC_PID,
};

enum
{
  SIGNAL_SELECTION_CHANGED,
  SIGNAL_SELECTION_READ,
  SIGNAL_SELECTION_WANTED,
  SIGNAL_OFFER_SELECTION,
  SIGNAL_READ_SELECTION,
  SIGNAL_SELECTION_DATA,
  N_SIGNALS
};
static guint signals[N_SIGNALS];

typedef enum
{
  GST_WAYRAY_RENDERER_AUTO,
  GST_WAYRAY_RENDERER_PIXMAN,
  GST_WAYRAY_RENDERER_GPU,
  GST_WAYRAY_RENDERER_PIXMAN_READBACK,
} GstWayrayRenderer;

#define DEFAULT_RENDERER GST_WAYRAY_RENDERER_AUTO
#define DEFAULT_WIDTH 1920
#define DEFAULT_HEIGHT 1080
#define DEFAULT_FPS 60

#define GST_TYPE_WAYRAY_RENDERER (gst_wayray_renderer_get_type ())
static GType
gst_wayray_renderer_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_WAYRAY_RENDERER_AUTO, "GPU (GLES2) when a render node exists, else pixman", "auto"},
    {GST_WAYRAY_RENDERER_PIXMAN, "pixman on the CPU, drawing straight into pushed buffers", "pixman"},
    {GST_WAYRAY_RENDERER_GPU, "wlroots' automatic choice (GLES2 on a GPU), frames read back once", "gpu"},
    {GST_WAYRAY_RENDERER_PIXMAN_READBACK,
        "pixman with the GPU path's read-back (for testing that path)", "pixman-readback"},
    {0, nullptr, nullptr},
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstWayrayRenderer", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-raw, format = (string) BGRx, "
        "width = (int) [ 16, 8192 ], height = (int) [ 16, 8192 ], "
        "framerate = (fraction) [ 1/1, 240/1 ]"));

struct GstWayraySrcPrivate
{
  /* Properties, under prop_lock. */
  std::mutex prop_lock;
  std::string socket_name;
  std::string exec;
  std::vector<std::string> exec_env;
  std::string keymap_layout, keymap_variant, keymap_options, keymap_model;
  int scale = 1;
  wayray::MonitorLayout monitors;
  bool xwayland = true;
  GstWayrayRenderer renderer = DEFAULT_RENDERER;

  /* Hand-over from the compositor thread to the streaming thread. */
  std::mutex lock;
  std::condition_variable cond;
  GstBuffer *pending = nullptr;         /* newest frame not yet pushed */
  int pending_w = 0, pending_h = 0;
  gint64 pending_rendered_ns = 0;
  bool cursor_dirty = false;
  wayray::CompositorCursor cursor;      /* newest cursor state */
  GstBuffer *cursor_image = nullptr;    /* image changed since last pushed */
  bool flushing = false;
  bool reconfigure = false;
  std::string error;
  guint64 frames_pushed = 0;

  /* Streaming thread only. */
  bool pushed_first = false;
  GstVideoInfo info;
  bool have_info = false;

  std::unique_ptr<wayray::Compositor> compositor;

  ~GstWayraySrcPrivate ()
  {
    gst_clear_buffer (&pending);
    gst_clear_buffer (&cursor_image);
  }
};

struct _GstWayraySrc
{
  GstPushSrc parent;
  GstWayraySrcPrivate *priv;
};

#define gst_wayray_src_parent_class parent_class
G_DEFINE_TYPE (GstWayraySrc, gst_wayray_src, GST_TYPE_PUSH_SRC);

static void gst_wayray_src_offer_selection (GstWayraySrc * self, gint sel, const gchar * const *types);
static guint gst_wayray_src_read_selection (GstWayraySrc * self, gint sel, const gchar * type);
static void gst_wayray_src_selection_data (GstWayraySrc * self, guint request, GBytes * data);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (wayraysrc, "wayraysrc", GST_RANK_NONE,
    GST_TYPE_WAYRAY_SRC, GST_DEBUG_CATEGORY_INIT (gst_wayray_src_debug, "wayraysrc", 0,
        "WayRay session compositor source"));

static void gst_wayray_src_finalize (GObject * object);
static void gst_wayray_src_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_wayray_src_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static gboolean gst_wayray_src_start (GstBaseSrc * bsrc);
static gboolean gst_wayray_src_stop (GstBaseSrc * bsrc);
static GstCaps *gst_wayray_src_fixate (GstBaseSrc * bsrc, GstCaps * caps);
static gboolean gst_wayray_src_set_caps (GstBaseSrc * bsrc, GstCaps * caps);
static gboolean gst_wayray_src_unlock (GstBaseSrc * bsrc);
static gboolean gst_wayray_src_unlock_stop (GstBaseSrc * bsrc);
static gboolean gst_wayray_src_event (GstBaseSrc * bsrc, GstEvent * event);
static gboolean gst_wayray_src_query (GstBaseSrc * bsrc, GstQuery * query);
static gboolean gst_wayray_src_negotiate (GstBaseSrc * bsrc);
static gboolean gst_wayray_src_send_event (GstElement * element, GstEvent * event);
static GstFlowReturn gst_wayray_src_create (GstPushSrc * psrc, GstBuffer ** buf);

static void
gst_wayray_src_class_init (GstWayraySrcClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSrcClass *basesrc_class = GST_BASE_SRC_CLASS (klass);
  GstPushSrcClass *pushsrc_class = GST_PUSH_SRC_CLASS (klass);

  gobject_class->finalize = gst_wayray_src_finalize;
  gobject_class->set_property = gst_wayray_src_set_property;
  gobject_class->get_property = gst_wayray_src_get_property;

  const auto rw_ready = (GParamFlags) (G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY |
      G_PARAM_STATIC_STRINGS);
  const auto rw_playing = (GParamFlags) (G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING |
      G_PARAM_STATIC_STRINGS);

  g_object_class_install_property (gobject_class, PROP_SOCKET_NAME,
      g_param_spec_string ("socket-name", "Socket name",
          "Name of the Wayland socket in $XDG_RUNTIME_DIR (what clients use as "
          "WAYLAND_DISPLAY). Empty picks a free wayland-N; reading it while running "
          "gives the name in use. Also announced in the wayraysrc-socket bus message.",
          nullptr, rw_ready));
  g_object_class_install_property (gobject_class, PROP_EXEC,
      g_param_spec_string ("exec", "Command",
          "Command line started inside the session once the output has its negotiated "
          "size, with WAYLAND_DISPLAY set (shell quoting, no shell). It and its process "
          "group are ended when the element stops.", nullptr, rw_ready));
  g_object_class_install_property (gobject_class, PROP_EXEC_ENVIRONMENT,
      g_param_spec_boxed ("exec-environment", "Exec environment",
          "The whole environment of the exec command, as NAME=value strings, instead of "
          "this process's own (empty or unset: inherit). WAYLAND_DISPLAY and "
          "XDG_SESSION_TYPE=wayland are set either way, DISPLAY is the session's Xwayland "
          "(or removed without it). "
          "wayrayd uses it to give sessions a login's environment.",
          G_TYPE_STRV, rw_ready));
  g_object_class_install_property (gobject_class, PROP_KEYMAP_LAYOUT,
      g_param_spec_string ("keymap-layout", "Keymap layout",
          "XKB layout of the session keyboard, e.g. \"us\" or \"de,us\" (empty: "
          "XKB_DEFAULT_LAYOUT or us). The keymap properties may change while the session "
          "runs: its applications get the new keymap at once", nullptr, rw_playing));
  g_object_class_install_property (gobject_class, PROP_KEYMAP_VARIANT,
      g_param_spec_string ("keymap-variant", "Keymap variant",
          "XKB variant of the layout, e.g. \"nodeadkeys\"", nullptr, rw_playing));
  g_object_class_install_property (gobject_class, PROP_KEYMAP_OPTIONS,
      g_param_spec_string ("keymap-options", "Keymap options",
          "XKB options, e.g. \"ctrl:nocaps\"", nullptr, rw_playing));
  g_object_class_install_property (gobject_class, PROP_KEYMAP_MODEL,
      g_param_spec_string ("keymap-model", "Keymap model",
          "XKB keyboard model, e.g. \"pc105\"", nullptr, rw_playing));
  g_object_class_install_property (gobject_class, PROP_SCALE,
      g_param_spec_int ("scale", "Output scale",
          "Scale of the session's output (HiDPI): applications draw this many pixels per "
          "logical pixel; the picture keeps its size. May change while running", 1, 4, 1, rw_playing));
  g_object_class_install_property (gobject_class, PROP_MONITORS,
      g_param_spec_string ("monitors", "Monitors",
          "The client's monitors, \"WxH[+X+Y],...\" (without a position, right of the one "
          "before): while the picture is their bounding box, the session has one output per "
          "monitor, laid out the same, and each window fills one of them; otherwise one output "
          "fills the picture. Empty: one output. May change while running", nullptr, rw_playing));
  g_object_class_install_property (gobject_class, PROP_XWAYLAND,
      g_param_spec_boolean ("xwayland", "Xwayland",
          "X11 programs in the session through Xwayland, started when the first one connects "
          "(the exec command gets DISPLAY); windows in the kiosk policy like any other", TRUE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_RENDERER,
      g_param_spec_enum ("renderer", "Renderer",
          "How frames are drawn: pixman draws straight into the pushed buffers "
          "(no copy); gpu lets wlroots pick GLES2 and reads each frame's damage back once",
          GST_TYPE_WAYRAY_RENDERER, DEFAULT_RENDERER, rw_ready));
  g_object_class_install_property (gobject_class, PROP_FRAMES_PUSHED,
      g_param_spec_uint64 ("frames-pushed", "Frames pushed",
          "Frames pushed since the element started (frames are pushed only on change)",
          0, G_MAXUINT64, 0, (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  g_object_class_install_property (gobject_class, PROP_FRAMES_RENDERED,
      g_param_spec_uint64 ("frames-rendered", "Frames rendered",
          "Frames the compositor drew since the element started: it draws none while the last one "
          "waits to be pushed (downstream slow or blocked), and holds the applications' frame "
          "callbacks meanwhile", 0, G_MAXUINT64, 0, (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  g_object_class_install_property (gobject_class, PROP_EXEC_PID,
      g_param_spec_int ("exec-pid", "Exec process id",
          "Process id of the running exec command (0 when none runs)", 0, G_MAXINT, 0,
          (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_set_static_metadata (element_class,
      "WayRay session compositor source", "Source/Video",
      "A headless Wayland compositor whose output is a live video stream with damage meta; "
      "navigation events become the session's input",
      "WayRay developers");
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 wayraysrc exec=foot ! videoconvert ! autovideosink");
  gst_element_class_add_static_pad_template (element_class, &src_template);
  element_class->send_event = GST_DEBUG_FUNCPTR (gst_wayray_src_send_event);

  basesrc_class->start = GST_DEBUG_FUNCPTR (gst_wayray_src_start);
  basesrc_class->stop = GST_DEBUG_FUNCPTR (gst_wayray_src_stop);
  basesrc_class->fixate = GST_DEBUG_FUNCPTR (gst_wayray_src_fixate);
  basesrc_class->set_caps = GST_DEBUG_FUNCPTR (gst_wayray_src_set_caps);
  basesrc_class->unlock = GST_DEBUG_FUNCPTR (gst_wayray_src_unlock);
  basesrc_class->unlock_stop = GST_DEBUG_FUNCPTR (gst_wayray_src_unlock_stop);
  basesrc_class->event = GST_DEBUG_FUNCPTR (gst_wayray_src_event);
  basesrc_class->query = GST_DEBUG_FUNCPTR (gst_wayray_src_query);
  basesrc_class->negotiate = GST_DEBUG_FUNCPTR (gst_wayray_src_negotiate);
  pushsrc_class->create = GST_DEBUG_FUNCPTR (gst_wayray_src_create);

  /* The session's selections (docs/wayraysrc.md, "Clipboard"); 0 is the
   * clipboard, 1 the primary selection. The notifications come from the
   * compositor thread. */
  signals[SIGNAL_SELECTION_CHANGED] = g_signal_new ("selection-changed", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, nullptr, nullptr, nullptr, G_TYPE_NONE, 2, G_TYPE_INT, G_TYPE_STRV);
  signals[SIGNAL_SELECTION_READ] = g_signal_new ("selection-read", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, nullptr, nullptr, nullptr, G_TYPE_NONE, 3, G_TYPE_UINT, G_TYPE_BYTES, G_TYPE_STRING);
  signals[SIGNAL_SELECTION_WANTED] = g_signal_new ("selection-wanted", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, nullptr, nullptr, nullptr, G_TYPE_NONE, 3, G_TYPE_INT, G_TYPE_STRING, G_TYPE_UINT);
  signals[SIGNAL_OFFER_SELECTION] = g_signal_new_class_handler ("offer-selection", G_TYPE_FROM_CLASS (klass),
      (GSignalFlags) (G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION), G_CALLBACK (gst_wayray_src_offer_selection), nullptr,
      nullptr, nullptr, G_TYPE_NONE, 2, G_TYPE_INT, G_TYPE_STRV);
  signals[SIGNAL_READ_SELECTION] = g_signal_new_class_handler ("read-selection", G_TYPE_FROM_CLASS (klass),
      (GSignalFlags) (G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION), G_CALLBACK (gst_wayray_src_read_selection), nullptr,
      nullptr, nullptr, G_TYPE_UINT, 2, G_TYPE_INT, G_TYPE_STRING);
  signals[SIGNAL_SELECTION_DATA] = g_signal_new_class_handler ("selection-data", G_TYPE_FROM_CLASS (klass),
      (GSignalFlags) (G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION), G_CALLBACK (gst_wayray_src_selection_data), nullptr,
      nullptr, nullptr, G_TYPE_NONE, 2, G_TYPE_UINT, G_TYPE_BYTES);

  gst_type_mark_as_plugin_api (GST_TYPE_WAYRAY_RENDERER, (GstPluginAPIFlags) 0);
  gst_wayray_damage_meta_get_info ();
}

static void
gst_wayray_src_offer_selection (GstWayraySrc * self, gint sel, const gchar * const *types)
{
  std::vector<std::string> list;
  for (; types && *types; types++)
    list.push_back (*types);
  std::lock_guard<std::mutex> g (self->priv->prop_lock);
  if (self->priv->compositor)
    self->priv->compositor->offer_selection (sel, list);
}

static guint
gst_wayray_src_read_selection (GstWayraySrc * self, gint sel, const gchar * type)
{
  std::lock_guard<std::mutex> g (self->priv->prop_lock);
  if (!self->priv->compositor || !type)
    return 0;
  return self->priv->compositor->read_selection (sel, type);
}

static void
gst_wayray_src_selection_data (GstWayraySrc * self, guint request, GBytes * data)
{
  std::lock_guard<std::mutex> g (self->priv->prop_lock);
  if (self->priv->compositor)
    self->priv->compositor->provide_selection (request, data);
}

static void
gst_wayray_src_init (GstWayraySrc * self)
{
  self->priv = new GstWayraySrcPrivate ();
  gst_base_src_set_live (GST_BASE_SRC (self), TRUE);
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
}

static void
gst_wayray_src_finalize (GObject * object)
{
  GstWayraySrc *self = GST_WAYRAY_SRC (object);
  delete self->priv;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
set_string (std::string & dst, const GValue * value)
{
  const gchar *s = g_value_get_string (value);
  dst = s ? s : "";
}

static void
gst_wayray_src_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstWayraySrcPrivate *priv = GST_WAYRAY_SRC (object)->priv;
  std::lock_guard<std::mutex> g (priv->prop_lock);
  bool keymap_changed = false;
  switch (prop_id) {
    case PROP_SOCKET_NAME:
      set_string (priv->socket_name, value);
      break;
    case PROP_EXEC:
      set_string (priv->exec, value);
      break;
    case PROP_EXEC_ENVIRONMENT: {
      priv->exec_env.clear ();
      const gchar *const *strv = (const gchar * const *) g_value_get_boxed (value);
      for (; strv && *strv; strv++)
        priv->exec_env.push_back (*strv);
      break;
    }
    case PROP_KEYMAP_LAYOUT:
      set_string (priv->keymap_layout, value);
      keymap_changed = true;
      break;
    case PROP_KEYMAP_VARIANT:
      set_string (priv->keymap_variant, value);
      keymap_changed = true;
      break;
    case PROP_KEYMAP_OPTIONS:
      set_string (priv->keymap_options, value);
      keymap_changed = true;
      break;
    case PROP_KEYMAP_MODEL:
      set_string (priv->keymap_model, value);
      keymap_changed = true;
      break;
    case PROP_RENDERER:
      priv->renderer = (GstWayrayRenderer) g_value_get_enum (value);
      break;
    case PROP_XWAYLAND:
      priv->xwayland = g_value_get_boolean (value);
      break;
    case PROP_SCALE:
      priv->scale = g_value_get_int (value);
      if (priv->compositor)
        priv->compositor->set_scale (priv->scale);
      break;
    case PROP_MONITORS: {
      const gchar *text = g_value_get_string (value);
      wayray::MonitorLayout layout;
      std::string error;
      if (text && *text && !wayray::monitor_layout_parse (text, &layout, &error)) {
        GST_WARNING_OBJECT (object, "%s; the monitors stay", error.c_str ());
        break;
      }
      priv->monitors = layout;
      if (priv->compositor)
        priv->compositor->set_monitors (layout);
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  /* A running session's keyboard takes the new keymap at once. */
  if (keymap_changed && priv->compositor)
    priv->compositor->set_keymap (priv->keymap_layout, priv->keymap_variant, priv->keymap_options,
        priv->keymap_model);
}

static void
gst_wayray_src_get_property (GObject * object, guint prop_id, GValue * value, GParamSpec * pspec)
{
  GstWayraySrcPrivate *priv = GST_WAYRAY_SRC (object)->priv;
  std::lock_guard<std::mutex> g (priv->prop_lock);
  auto str = [] (const std::string & s) { return s.empty () ? nullptr : s.c_str (); };
  switch (prop_id) {
    case PROP_SOCKET_NAME:
      if (priv->compositor)
        g_value_set_string (value, priv->compositor->socket_name ().c_str ());
      else
        g_value_set_string (value, str (priv->socket_name));
      break;
    case PROP_EXEC:
      g_value_set_string (value, str (priv->exec));
      break;
    case PROP_EXEC_ENVIRONMENT: {
      GStrvBuilder *b = g_strv_builder_new ();
      for (const std::string &e : priv->exec_env)
        g_strv_builder_add (b, e.c_str ());
      g_value_take_boxed (value, g_strv_builder_end (b));
      g_strv_builder_unref (b);
      break;
    }
    case PROP_XWAYLAND:
      g_value_set_boolean (value, priv->xwayland);
      break;
    case PROP_SCALE:
      g_value_set_int (value, priv->scale);
      break;
    case PROP_MONITORS:
      g_value_set_string (value, priv->monitors.empty () ? nullptr :
          wayray::monitor_layout_format (priv->monitors).c_str ());
      break;
    case PROP_KEYMAP_LAYOUT:
      g_value_set_string (value, str (priv->keymap_layout));
      break;
    case PROP_KEYMAP_VARIANT:
      g_value_set_string (value, str (priv->keymap_variant));
      break;
    case PROP_KEYMAP_OPTIONS:
      g_value_set_string (value, str (priv->keymap_options));
      break;
    case PROP_KEYMAP_MODEL:
      g_value_set_string (value, str (priv->keymap_model));
      break;
    case PROP_RENDERER:
      g_value_set_enum (value, priv->renderer);
      break;
    case PROP_EXEC_PID:
      g_value_set_int (value, priv->compositor ? priv->compositor->exec_pid () : 0);
      break;
    case PROP_FRAMES_PUSHED:{
      std::lock_guard<std::mutex> g2 (priv->lock);
      g_value_set_uint64 (value, priv->frames_pushed);
      break;
    }
    case PROP_FRAMES_RENDERED:
      g_value_set_uint64 (value, priv->compositor ? priv->compositor->frames_rendered () : 0);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static bool
have_render_node (void)
{
  GDir *dir = g_dir_open ("/dev/dri", 0, nullptr);
  if (!dir)
    return false;
  bool found = false;
  const gchar *name;
  while (!found && (name = g_dir_read_name (dir)))
    found = g_str_has_prefix (name, "renderD");
  g_dir_close (dir);
  return found;
}

static gboolean
gst_wayray_src_start (GstBaseSrc * bsrc)
{
  GstWayraySrc *self = GST_WAYRAY_SRC (bsrc);
  GstWayraySrcPrivate *priv = self->priv;

  wayray::CompositorConfig config;
  {
    std::lock_guard<std::mutex> g (priv->prop_lock);
    config.socket_name = priv->socket_name;
    config.exec = priv->exec;
    config.exec_env = priv->exec_env;
    config.xkb_layout = priv->keymap_layout;
    config.xkb_variant = priv->keymap_variant;
    config.xkb_options = priv->keymap_options;
    config.xkb_model = priv->keymap_model;
    config.scale = priv->scale;
    config.monitors = priv->monitors;
    config.xwayland = priv->xwayland;
    switch (priv->renderer) {
      case GST_WAYRAY_RENDERER_AUTO:
        config.use_pixman = !have_render_node ();
        break;
      case GST_WAYRAY_RENDERER_PIXMAN:
        config.use_pixman = true;
        break;
      case GST_WAYRAY_RENDERER_GPU:
        config.use_pixman = false;
        break;
      case GST_WAYRAY_RENDERER_PIXMAN_READBACK:
        config.use_pixman = true;
        config.read_back = true;
        break;
    }
  }
  config.width = DEFAULT_WIDTH;
  config.height = DEFAULT_HEIGHT;
  config.fps_n = DEFAULT_FPS;
  config.fps_d = 1;

  {
    std::lock_guard<std::mutex> g (priv->lock);
    gst_clear_buffer (&priv->pending);
    gst_clear_buffer (&priv->cursor_image);
    priv->cursor_dirty = false;
    priv->error.clear ();
    priv->frames_pushed = 0;
    priv->reconfigure = false;
  }
  priv->pushed_first = false;
  priv->have_info = false;

  wayray::CompositorCallbacks cb;
  cb.frame = [self] (wayray::CompositorFrame && frame) {
    GstWayraySrcPrivate *p = self->priv;
    std::lock_guard<std::mutex> g (p->lock);
    if (p->pending) {
      /* The streaming thread has not taken the previous frame: the new one
       * replaces it, and its damage must also cover what the old one
       * changed. */
      GstWayrayDamageMeta *older = gst_buffer_get_wayray_damage_meta (p->pending);
      GstWayrayDamageMeta *newer = gst_buffer_get_wayray_damage_meta (frame.buffer);
      if (older && newer && p->pending_w == frame.width && p->pending_h == frame.height) {
        for (guint i = 0; i < older->n_rects; i++)
          gst_wayray_damage_meta_add_rect (newer, &older->rects[i]);
      } else if (newer) {
        GstVideoRectangle all = { 0, 0, frame.width, frame.height };
        gst_wayray_damage_meta_add_rect (newer, &all);
      }
      gst_buffer_unref (p->pending);
    }
    p->pending = frame.buffer;
    p->pending_w = frame.width;
    p->pending_h = frame.height;
    p->pending_rendered_ns = frame.rendered_ns;
    p->cond.notify_all ();
  };
  cb.busy = [self] {
    GstWayraySrcPrivate *p = self->priv;
    std::lock_guard<std::mutex> g (p->lock);
    return p->pending != nullptr;
  };
  cb.cursor = [self] (wayray::CompositorCursor && c) {
    GstWayraySrcPrivate *p = self->priv;
    std::lock_guard<std::mutex> g (p->lock);
    if (c.image) {
      gst_clear_buffer (&p->cursor_image);
      p->cursor_image = c.image;
      c.image = nullptr;
    }
    p->cursor = c;
    p->cursor_dirty = true;
    p->cond.notify_all ();
  };
  cb.error = [self] (const std::string & msg) {
    GstWayraySrcPrivate *p = self->priv;
    std::lock_guard<std::mutex> g (p->lock);
    if (p->error.empty ())
      p->error = msg;
    p->cond.notify_all ();
  };
  cb.exec_exited = [self] (int pid, int status) {
    GstStructure *s = gst_structure_new ("wayraysrc-exec-exited",
        "pid", G_TYPE_INT, pid, "status", G_TYPE_INT, status, nullptr);
    if (WIFEXITED (status))
      gst_structure_set (s, "exit-code", G_TYPE_INT, WEXITSTATUS (status), nullptr);
    GST_INFO_OBJECT (self, "session command (pid %d) ended with status %d", pid, status);
    gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self), s));
  };

  cb.selection_changed = [self] (int sel, const std::vector<std::string> &types) {
    std::vector<const gchar *> strv;
    for (const std::string &t : types)
      strv.push_back (t.c_str ());
    strv.push_back (nullptr);
    g_signal_emit (self, signals[SIGNAL_SELECTION_CHANGED], 0, sel, strv.data ());
  };
  cb.selection_read = [self] (guint request, GBytes *data, const std::string &error) {
    g_signal_emit (self, signals[SIGNAL_SELECTION_READ], 0, request, data, data ? nullptr : error.c_str ());
    if (data)
      g_bytes_unref (data);
  };
  cb.selection_wanted = [self] (int sel, const std::string &type, guint request) {
    g_signal_emit (self, signals[SIGNAL_SELECTION_WANTED], 0, sel, type.c_str (), request);
  };

  auto compositor = std::make_unique<wayray::Compositor> (GST_OBJECT (self), config, cb);
  GError *error = nullptr;
  if (!compositor->start (&error)) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("Could not start the session compositor: %s",
            error->message), (nullptr));
    g_error_free (error);
    return FALSE;
  }

  std::string name = compositor->socket_name ();
  std::string path = compositor->socket_path ();
  {
    std::lock_guard<std::mutex> g (priv->prop_lock);
    priv->compositor = std::move (compositor);
  }
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("wayraysrc-socket",
              "socket-name", G_TYPE_STRING, name.c_str (),
              "socket-path", G_TYPE_STRING, path.c_str (),
              "runtime-dir", G_TYPE_STRING, g_getenv ("XDG_RUNTIME_DIR"), nullptr)));
  GST_INFO_OBJECT (self, "session socket is %s", path.c_str ());
  return TRUE;
}

static gboolean
gst_wayray_src_stop (GstBaseSrc * bsrc)
{
  GstWayraySrcPrivate *priv = GST_WAYRAY_SRC (bsrc)->priv;
  std::unique_ptr<wayray::Compositor> compositor;
  {
    std::lock_guard<std::mutex> g (priv->prop_lock);
    compositor = std::move (priv->compositor);
  }
  if (compositor)
    compositor->stop ();
  std::lock_guard<std::mutex> g (priv->lock);
  gst_clear_buffer (&priv->pending);
  gst_clear_buffer (&priv->cursor_image);
  priv->cursor_dirty = false;
  return TRUE;
}

static GstCaps *
gst_wayray_src_fixate (GstBaseSrc * bsrc, GstCaps * caps)
{
  /* Left free, the picture spans the monitors. */
  GstWayraySrcPrivate *priv = GST_WAYRAY_SRC (bsrc)->priv;
  int w = DEFAULT_WIDTH, h = DEFAULT_HEIGHT;
  {
    std::lock_guard<std::mutex> g (priv->prop_lock);
    if (!priv->monitors.empty ())
      wayray::monitor_layout_bounds (priv->monitors, &w, &h);
  }
  caps = gst_caps_make_writable (caps);
  GstStructure *s = gst_caps_get_structure (caps, 0);
  gst_structure_fixate_field_nearest_int (s, "width", w);
  gst_structure_fixate_field_nearest_int (s, "height", h);
  gst_structure_fixate_field_nearest_fraction (s, "framerate", DEFAULT_FPS, 1);
  return GST_BASE_SRC_CLASS (parent_class)->fixate (bsrc, caps);
}

static gboolean
gst_wayray_src_set_caps (GstBaseSrc * bsrc, GstCaps * caps)
{
  GstWayraySrc *self = GST_WAYRAY_SRC (bsrc);
  GstWayraySrcPrivate *priv = self->priv;
  GstVideoInfo info;
  if (!gst_video_info_from_caps (&info, caps)) {
    GST_ERROR_OBJECT (self, "invalid caps %" GST_PTR_FORMAT, caps);
    return FALSE;
  }
  priv->info = info;
  priv->have_info = true;
  GST_INFO_OBJECT (self, "output %dx%d at %d/%d", info.width, info.height, info.fps_n, info.fps_d);
  std::lock_guard<std::mutex> g (priv->prop_lock);
  if (priv->compositor)
    priv->compositor->resize (info.width, info.height, info.fps_n, info.fps_d);
  return TRUE;
}

static gboolean
gst_wayray_src_unlock (GstBaseSrc * bsrc)
{
  GstWayraySrcPrivate *priv = GST_WAYRAY_SRC (bsrc)->priv;
  std::lock_guard<std::mutex> g (priv->lock);
  priv->flushing = true;
  priv->cond.notify_all ();
  return TRUE;
}

static gboolean
gst_wayray_src_unlock_stop (GstBaseSrc * bsrc)
{
  GstWayraySrcPrivate *priv = GST_WAYRAY_SRC (bsrc)->priv;
  std::lock_guard<std::mutex> g (priv->lock);
  priv->flushing = false;
  return TRUE;
}

/* X11-style button numbers (what stock sinks send) to evdev codes. */
static guint32
evdev_button (gint button)
{
  switch (button) {
    case 1:
      return 0x110;             /* BTN_LEFT */
    case 2:
      return 0x112;             /* BTN_MIDDLE */
    case 3:
      return 0x111;             /* BTN_RIGHT */
    case 8:
      return 0x113;             /* BTN_SIDE */
    case 9:
      return 0x114;             /* BTN_EXTRA */
    default:
      return 0;
  }
}

/* Navigation events may come from the network: positions must be finite
 * numbers, wheel steps a sane count. Anything else is dropped. */
static bool
valid_position (GstWayraySrc * self, gdouble x, gdouble y)
{
  if (std::isfinite (x) && std::isfinite (y))
    return true;
  GST_WARNING_OBJECT (self, "navigation event with a non-finite position dropped");
  return false;
}

static void
handle_navigation (GstWayraySrc * self, wayray::Compositor * c, GstEvent * event)
{
  const GstStructure *s = gst_event_get_structure (event);
  gdouble x, y, dx, dy;
  gint button;
  const gchar *key;

  switch (gst_navigation_event_get_type (event)) {
    case GST_NAVIGATION_EVENT_MOUSE_MOVE:
      if (gst_navigation_event_parse_mouse_move_event (event, &x, &y) && valid_position (self, x, y))
        c->pointer_motion (x, y);
      break;
    case GST_NAVIGATION_EVENT_MOUSE_BUTTON_PRESS:
    case GST_NAVIGATION_EVENT_MOUSE_BUTTON_RELEASE:{
      bool pressed = gst_navigation_event_get_type (event) == GST_NAVIGATION_EVENT_MOUSE_BUTTON_PRESS;
      if (!gst_navigation_event_parse_mouse_button_event (event, &button, &x, &y) ||
          !valid_position (self, x, y))
        break;
      c->pointer_motion (x, y);
      if (button >= 4 && button <= 7) {
        /* Old-style wheel buttons: up, down, left, right. */
        if (pressed)
          c->pointer_axis (button == 6 ? -1 : button == 7 ? 1 : 0,
              button == 4 ? -1 : button == 5 ? 1 : 0);
      } else if (guint32 code = evdev_button (button)) {
        c->pointer_button (code, pressed);
      }
      break;
    }
    case GST_NAVIGATION_EVENT_MOUSE_SCROLL:
      /* GStreamer's delta_y is positive for scrolling up; Wayland's axis
       * value is positive for down. */
      if (gst_navigation_event_parse_mouse_scroll_event (event, &x, &y, &dx, &dy) &&
          valid_position (self, x, y) && valid_position (self, dx, dy)) {
        c->pointer_motion (x, y);
        c->pointer_axis (-CLAMP (dx, -10.0, 10.0), -CLAMP (dy, -10.0, 10.0));
      }
      break;
    case GST_NAVIGATION_EVENT_KEY_PRESS:
    case GST_NAVIGATION_EVENT_KEY_RELEASE:{
      bool pressed = gst_navigation_event_get_type (event) == GST_NAVIGATION_EVENT_KEY_PRESS;
      guint keycode;
      if (s && gst_structure_has_field (s, "keycode")) {
        /* Linux key codes end below KEY_MAX (0x2ff). */
        if (gst_structure_get_uint (s, "keycode", &keycode) && keycode > 0 && keycode < 0x300)
          c->key (keycode, pressed);
        else
          GST_WARNING_OBJECT (self, "key event with an invalid keycode field dropped");
      } else if (gst_navigation_event_parse_key_event (event, &key) && key) {
        c->key_by_name (key, pressed);
      }
      break;
    }
    default:
      GST_LOG_OBJECT (self, "ignoring navigation event %" GST_PTR_FORMAT, event);
      break;
  }
}

static gboolean
gst_wayray_src_event (GstBaseSrc * bsrc, GstEvent * event)
{
  GstWayraySrc *self = GST_WAYRAY_SRC (bsrc);
  GstWayraySrcPrivate *priv = self->priv;

  if (GST_EVENT_TYPE (event) == GST_EVENT_NAVIGATION ||
      gst_video_event_is_force_key_unit (event)) {
    std::lock_guard<std::mutex> g (priv->prop_lock);
    if (!priv->compositor)
      return FALSE;
    if (GST_EVENT_TYPE (event) == GST_EVENT_NAVIGATION) {
      handle_navigation (self, priv->compositor.get (), event);
    } else {
      GST_DEBUG_OBJECT (self, "force-key-unit: next frame fully damaged");
      priv->compositor->request_full_frame ();
    }
    return TRUE;
  }

  if (GST_EVENT_TYPE (event) == GST_EVENT_RECONFIGURE) {
    /* create() may be waiting for damage that never comes: wake it so the
     * new caps take effect now. */
    std::lock_guard<std::mutex> g (priv->lock);
    priv->reconfigure = true;
    priv->cond.notify_all ();
  }
  return GST_BASE_SRC_CLASS (parent_class)->event (bsrc, event);
}

/* Applications may hand input to the element itself (gst_element_send_event)
 * rather than through a sink; GstBaseSrc would drop navigation there. */
static gboolean
gst_wayray_src_send_event (GstElement * element, GstEvent * event)
{
  if (GST_EVENT_TYPE (event) == GST_EVENT_NAVIGATION || gst_video_event_is_force_key_unit (event)) {
    gboolean ret = gst_wayray_src_event (GST_BASE_SRC (element), event);
    gst_event_unref (event);
    return ret;
  }
  return GST_ELEMENT_CLASS (parent_class)->send_event (element, event);
}

static gboolean
gst_wayray_src_query (GstBaseSrc * bsrc, GstQuery * query)
{
  GstWayraySrcPrivate *priv = GST_WAYRAY_SRC (bsrc)->priv;
  if (GST_QUERY_TYPE (query) == GST_QUERY_LATENCY && priv->have_info && priv->info.fps_n > 0) {
    /* A frame is rendered within one frame interval of its damage. */
    GstClockTime frame = gst_util_uint64_scale_int (GST_SECOND, priv->info.fps_d, priv->info.fps_n);
    gst_query_set_latency (query, TRUE, frame, GST_CLOCK_TIME_NONE);
    return TRUE;
  }
  return GST_BASE_SRC_CLASS (parent_class)->query (bsrc, query);
}

/* A new screen size arrives as new caps on a capsfilter downstream, set
 * from another thread: a negotiation that queried the old caps and then
 * met the new ones fails once. Try again (a few times, briefly) before
 * the stream fails, so a client attaching at another size never ends
 * its session. */
static gboolean
gst_wayray_src_negotiate (GstBaseSrc * bsrc)
{
  for (int attempt = 1;; attempt++) {
    if (GST_BASE_SRC_CLASS (parent_class)->negotiate (bsrc))
      return TRUE;
    if (attempt == 5 || GST_PAD_IS_FLUSHING (GST_BASE_SRC_PAD (bsrc)))
      return FALSE;
    GST_INFO_OBJECT (bsrc, "negotiation failed (caps changed meanwhile?); trying again");
    g_usleep (10 * 1000 * attempt);
  }
}

/* The frame the compositor handed over was taken or dropped: it may draw
 * the next. */
static void
frame_taken (GstWayraySrc * self)
{
  GstWayraySrcPrivate *priv = self->priv;
  std::lock_guard<std::mutex> g (priv->prop_lock);
  if (priv->compositor)
    priv->compositor->frame_taken ();
}

static GstFlowReturn
gst_wayray_src_create (GstPushSrc * psrc, GstBuffer ** outbuf)
{
  GstWayraySrc *self = GST_WAYRAY_SRC (psrc);
  GstWayraySrcPrivate *priv = self->priv;
  GstPad *pad = GST_BASE_SRC_PAD (psrc);

  std::unique_lock<std::mutex> g (priv->lock);
  for (;;) {
    if (priv->flushing)
      return GST_FLOW_FLUSHING;
    if (!priv->error.empty ()) {
      std::string msg = priv->error;
      g.unlock ();
      GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("Session compositor failed: %s", msg.c_str ()),
          (nullptr));
      return GST_FLOW_ERROR;
    }
    if (priv->reconfigure) {
      priv->reconfigure = false;
      g.unlock ();
      if (gst_pad_check_reconfigure (pad) && !gst_base_src_negotiate (GST_BASE_SRC (psrc))) {
        gst_pad_mark_reconfigure (pad);
        return GST_FLOW_NOT_NEGOTIATED;
      }
      g.lock ();
      continue;
    }
    /* Cursor updates go out between frames, once the stream has begun
     * (a segment must precede them). */
    if (priv->cursor_dirty && priv->pushed_first) {
      GstWayrayCursor c = { };
      c.visible = priv->cursor.visible;
      c.x = priv->cursor.x;
      c.y = priv->cursor.y;
      c.serial = priv->cursor.serial;
      c.hotspot_x = priv->cursor.hotspot_x;
      c.hotspot_y = priv->cursor.hotspot_y;
      c.width = priv->cursor.width;
      c.height = priv->cursor.height;
      c.image = priv->cursor_image;
      priv->cursor_image = nullptr;
      priv->cursor_dirty = false;
      g.unlock ();
      GstEvent *ev = gst_wayray_cursor_event_new (&c);
      gst_clear_buffer (&c.image);
      gst_pad_push_event (pad, ev);
      g.lock ();
      continue;
    }
    if (priv->pending) {
      if (priv->have_info && (priv->pending_w != GST_VIDEO_INFO_WIDTH (&priv->info) ||
              priv->pending_h != GST_VIDEO_INFO_HEIGHT (&priv->info))) {
        /* Rendered before a resize took effect. */
        gst_clear_buffer (&priv->pending);
        g.unlock ();
        frame_taken (self);
        g.lock ();
        continue;
      }
      break;
    }
    priv->cond.wait (g);
  }

  GstBuffer *buf = priv->pending;
  gint64 rendered_ns = priv->pending_rendered_ns;
  priv->pending = nullptr;
  priv->frames_pushed++;
  g.unlock ();
  frame_taken (self);

  /* Timestamp with the pipeline clock at the moment of rendering. */
  GstClock *clock = gst_element_get_clock (GST_ELEMENT (self));
  if (clock) {
    GstClockTime now = gst_clock_get_time (clock);
    GstClockTime base = gst_element_get_base_time (GST_ELEMENT (self));
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    gint64 age = (gint64) ts.tv_sec * GST_SECOND + ts.tv_nsec - rendered_ns;
    GstClockTime at = now > (GstClockTime) age ? now - age : 0;
    GST_BUFFER_PTS (buf) = at > base ? at - base : 0;
    gst_object_unref (clock);
  }
  GST_BUFFER_DTS (buf) = GST_CLOCK_TIME_NONE;
  if (!priv->pushed_first)
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
  priv->pushed_first = true;

  *outbuf = buf;
  return GST_FLOW_OK;
}
