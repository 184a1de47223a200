/* The session's window management (see wrdesktop.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrdesktop.h"

#include "wrsessiondir.h"

#include <glib.h>
#include <glib/gstdio.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace wayray {

namespace {

struct Launcher {
  const char *program, *arguments, *name, *icon;
};

/* What the weston panel offers, those installed. */
const Launcher kLaunchers[] = {
  /* weston's screen says it is 1 mm per pixel: foot would take that for
   * 25 dpi and shrink its font to a third. */
  { "foot", " --override=dpi-aware=no", "Terminal", "/usr/share/icons/Adwaita/24x24/legacy/utilities-terminal.png" },
  { "xterm", "", "X terminal", "/usr/share/icons/Adwaita/24x24/legacy/utilities-terminal-symbolic.symbolic.png" },
  { "weston-terminal", "", "Weston terminal", "/usr/share/weston/terminal.png" },
};

/* weston's own settings: nested in the session's one window (its wayland
 * backend, full screen, drawn with pixman), the desktop shell without
 * animations (each would be frames of pictures for the network) and
 * without a lock screen (the session's lock is its token), Xwayland. */
const char *const kWestonHead = R"(# Written by wayrayd for this session (docs/desktop.md).
[core]
xwayland=true
idle-time=0
require-input=false

[shell]
panel-position=top
background-color=0xff1f3a52
locking=false
animation=none
close-animation=none
startup-animation=none
focus-animation=none
clock-format=minutes
cursor-theme=Adwaita
cursor-size=24
)";

/* sway: a bar on top with the time, Xwayland, the keyboard layout the
 * session's was set to (sway reads keys as key codes and maps them
 * itself). Super+Return opens a terminal, Super+Shift+q closes a window. */
const char *const kSwayHead = R"(# Written by wayrayd for this session (docs/desktop.md).
xwayland enable
output * bg #1f3a52 solid_color
default_border normal 2
seat * xcursor_theme Adwaita 24
focus_follows_mouse no
floating_modifier Mod4 normal
bindsym Mod4+Return exec foot
bindsym Mod4+Shift+q kill
bindsym Mod4+Left focus left
bindsym Mod4+Right focus right
bindsym Mod4+Up focus up
bindsym Mod4+Down focus down
bindsym Mod4+Shift+Left move left
bindsym Mod4+Shift+Right move right
bindsym Mod4+f fullscreen toggle
bindsym Mod4+Shift+space floating toggle
bar {
    position top
    status_command while date +'%a %d %b %H:%M'; do sleep 20; done
}
)";

/* sway's clipboard and primary selection joined to wayraysrc's (which the
 * client's clipboard reaches): one watcher per selection and direction
 * (wl-paste --watch, data control on both sides), each change copied to
 * the other side by clipboard-copy, which drops what it copied itself
 * (the other side's watcher sees it next), empty selections and more
 * than 16 MiB. */
const char *const kClipboardBridge = R"SH(#!/bin/sh
# Written by wayrayd for this session (docs/desktop.md, "Clipboard").
inner="$WAYLAND_DISPLAY"
outer="$1"
for p in "" --primary; do
  wl-paste $p --watch "$(dirname "$0")/clipboard-copy" "$outer" "$p" &
  WAYLAND_DISPLAY="$outer" wl-paste $p --watch "$(dirname "$0")/clipboard-copy" "$inner" "$p" &
done
wait
)SH";
const char *const kClipboardCopy = R"SH(#!/bin/sh
# Written by wayrayd for this session (docs/desktop.md, "Clipboard").
# stdin: a new selection; $1: the display to copy it to; $2: "" or --primary
d="$(dirname "$0")"
tmp=$(mktemp "$d/clip.XXXXXX") || exit 0
head -c 16777217 > "$tmp"
size=$(stat -c %s "$tmp")
if [ "$size" -eq 0 ] || [ "$size" -gt 16777216 ]; then rm -f "$tmp"; exit 0; fi
hash=$(sha256sum < "$tmp" | cut -c1-64)
last="$d/clip-last$2"
if [ "$hash" = "$(cat "$last" 2>/dev/null)" ]; then rm -f "$tmp"; exit 0; fi
echo "$hash" > "$last"
type="text/plain;charset=utf-8"
case "$(file -b --mime-type "$tmp")" in image/png) type=image/png ;; esac
WAYLAND_DISPLAY="$1" wl-copy $2 --type "$type" < "$tmp"
rm -f "$tmp"
)SH";

bool
installed (const char *program)
{
  gchar *found = g_find_program_in_path (program);
  bool ok = found != nullptr;
  g_free (found);
  return ok;
}

/* The shell quoting of one word, for a line the desktop hands to sh. */
std::string
quote (const std::string &word)
{
  gchar *q = g_shell_quote (word.c_str ());
  std::string s (q);
  g_free (q);
  return s;
}

}  // namespace

bool
xkb_name_ok (const std::string &name)
{
  if (name.empty () || name.size () > 64)
    return false;
  for (char c : name)
    if (!g_ascii_isalnum (c) && !strchr ("_-+,:()", c))
      return false;
  return true;
}

bool
parse_desktop (const std::string &name, DesktopKind *kind)
{
  if (name == "kiosk")
    *kind = DesktopKind::Kiosk;
  else if (name == "weston")
    *kind = DesktopKind::Weston;
  else if (name == "sway")
    *kind = DesktopKind::Sway;
  else
    return false;
  return true;
}

const char *
desktop_name (DesktopKind kind)
{
  switch (kind) {
    case DesktopKind::Weston: return "weston";
    case DesktopKind::Sway: return "sway";
    default: return "kiosk";
  }
}

std::string
desktop_programs_missing (DesktopKind kind)
{
  std::vector<const char *> programs;
  if (kind == DesktopKind::Weston)
    programs = { "weston", "Xwayland" };
  else if (kind == DesktopKind::Sway)
    programs = { "sway", "swaybar", "swaybg", "Xwayland" };
  std::string missing;
  for (const char *p : programs)
    if (!installed (p))
      missing += (missing.empty () ? "" : ", ") + std::string (p);
  return missing;
}

std::string
Keymap::describe () const
{
  std::string s = layout.empty () ? "(default)" : layout;
  if (!variant.empty ())
    s += "(" + variant + ")";
  if (!options.empty ())
    s += " " + options;
  return s;
}

bool
Keymap::valid () const
{
  return xkb_name_ok (layout) && (variant.empty () || xkb_name_ok (variant)) &&
      (options.empty () || xkb_name_ok (options));
}

Desktop::Told
Desktop::configure (const Keymap &keymap, int scale, int outputs, int pid, std::string &error)
{
  if (kind_ != DesktopKind::Sway)
    return Told::Done;
  if (pid <= 0)
    return Told::NotYet;
  const char *xdg = g_getenv ("XDG_RUNTIME_DIR");
  const std::string sock = std::string (xdg ? xdg : "") + "/sway-ipc." + std::to_string (getuid ()) + "." +
      std::to_string (pid) + ".sock";
  if (!g_file_test (sock.c_str (), G_FILE_TEST_EXISTS))
    return Told::NotYet;
  /* One IPC message, three commands; swaymsg quotes nothing, the names
   * are plain XKB names (Keymap::valid). */
  std::string cmd = "input type:keyboard xkb_layout " + keymap.layout + ", input type:keyboard xkb_variant " +
      (keymap.variant.empty () ? "\"\"" : keymap.variant) + ", input type:keyboard xkb_options " +
      (keymap.options.empty () ? "\"\"" : keymap.options) + ", output * scale " + std::to_string (CLAMP (scale, 1, 4));
  /* One output per monitor: sway's Wayland backend names them WL-1,
   * WL-2, ...; wayraysrc puts each window of sway's on a monitor of its
   * own. Sway 1.7 can neither remove nor turn off an output of its
   * Wayland backend: with fewer monitors, the extra outputs' windows stay
   * (wayraysrc puts them behind the first) and their workspaces move to
   * the first output. */
  outputs = CLAMP (outputs, 1, 8);
  for (; outputs_made_ < outputs; outputs_made_++)
    cmd += ", create_output";
  for (int i = outputs + 1; i <= outputs_on_; i++)
    cmd += ", focus output WL-" + std::to_string (i) + ", move workspace to output WL-1";
  if (outputs < outputs_on_)
    cmd += ", focus output WL-1";
  outputs_on_ = outputs;
  const gchar *argv[] = { "swaymsg", "-s", sock.c_str (), cmd.c_str (), nullptr };
  gchar *out = nullptr, *err = nullptr;
  gint status = 0;
  GError *gerr = nullptr;
  bool ok = g_spawn_sync (nullptr, (gchar **) argv, nullptr, G_SPAWN_SEARCH_PATH, nullptr, nullptr, &out, &err,
      &status, &gerr) && g_spawn_check_wait_status (status, &gerr);
  if (!ok)
    error = std::string ("swaymsg: ") + (gerr ? gerr->message : "failed") + (err && *err ? std::string (": ") + err : "");
  g_clear_error (&gerr);
  g_free (out);
  g_free (err);
  return ok ? Told::Done : Told::Failed;
}

bool
Desktop::prepare (const DesktopSetup &setup, std::string &exec, std::string &error)
{
  remove ();
  kind_ = setup.kind;
  if (setup.kind == DesktopKind::Kiosk) {
    exec = setup.command;
    return true;
  }
  dir_ = make_session_directory ("desktop", setup.id, error);
  if (dir_.empty ())
    return false;

  /* The session command, as a program of its own: weston starts one
   * executable without arguments. */
  const std::string start = dir_ + "/session-command";
  if (!setup.command.empty ()) {
    if (!write_session_file (start, "#!/bin/sh\n# The session command (docs/desktop.md).\nexec " + setup.command + "\n",
            error))
      return false;
    g_chmod (start.c_str (), 0700);
  }

  std::string config = setup.config_file;
  if (setup.kind == DesktopKind::Weston) {
    if (config.empty ()) {
      std::string text = kWestonHead;
      for (const Launcher &l : kLaunchers) {
        if (!installed (l.program))
          continue;
        gchar *path = g_find_program_in_path (l.program);
        text += std::string ("\n[launcher]\nicon=") + l.icon + "\npath=" + path + l.arguments + "\ndisplayname=" +
            l.name + "\n";
        g_free (path);
      }
      if (!setup.command.empty ())
        text += "\n[autolaunch]\npath=" + start + "\n";
      config = dir_ + "/weston.ini";
      if (!write_session_file (config, text, error))
        return false;
    }
    socket_ = "wayray-" + setup.seat + "-" + std::to_string (setup.id) + "-desktop";
    exec = "weston --backend=wayland-backend.so --use-pixman --fullscreen --config=" + quote (config) +
        " --socket=" + quote (socket_) + " --log=" + quote (dir_ + "/weston.log");
  } else {
    if (config.empty ()) {
      std::string text = kSwayHead;
      if (setup.keymap.valid ()) {
        text += "input type:keyboard xkb_layout " + setup.keymap.layout + "\n";
        if (!setup.keymap.variant.empty ())
          text += "input type:keyboard xkb_variant " + setup.keymap.variant + "\n";
        if (!setup.keymap.options.empty ())
          text += "input type:keyboard xkb_options " + setup.keymap.options + "\n";
      }
      if (setup.scale > 1)
        text += "output * scale " + std::to_string (CLAMP (setup.scale, 1, 4)) + "\n";
      if (!setup.parent_socket.empty () && installed ("wl-paste") && installed ("wl-copy") && installed ("file")) {
        if (!write_session_file (dir_ + "/clipboard-bridge", kClipboardBridge, error) ||
            !write_session_file (dir_ + "/clipboard-copy", kClipboardCopy, error))
          return false;
        g_chmod ((dir_ + "/clipboard-bridge").c_str (), 0700);
        g_chmod ((dir_ + "/clipboard-copy").c_str (), 0700);
        text += "exec " + quote (dir_ + "/clipboard-bridge") + " " + quote (setup.parent_socket) + "\n";
      }
      if (!setup.command.empty ())
        text += "exec " + start + "\n";
      config = dir_ + "/sway.conf";
      if (!write_session_file (config, text, error))
        return false;
    }
    /* wlroots' Wayland backend (not the headless one a test or a
     * parent's environment may name), drawing with pixman into shared
     * memory as wayraysrc does. */
    outputs_made_ = outputs_on_ = CLAMP (setup.outputs, 1, 8);
    exec = "env WLR_BACKENDS=wayland WLR_RENDERER=pixman WLR_WL_OUTPUTS=" + std::to_string (outputs_made_) +
        " sway --config " + quote (config);
  }
  return true;
}

std::string
Desktop::log_tail (size_t max) const
{
  gchar *text = nullptr;
  gsize len = 0;
  if (dir_.empty () || !g_file_get_contents ((dir_ + "/weston.log").c_str (), &text, &len, nullptr))
    return "";
  std::string s (text, len);
  g_free (text);
  if (s.size () > max)
    s = "..." + s.substr (s.size () - max);
  return s;
}

void
Desktop::remove ()
{
  if (!dir_.empty ())
    remove_tree (dir_);
  dir_.clear ();
  socket_.clear ();
}

}  // namespace wayray
