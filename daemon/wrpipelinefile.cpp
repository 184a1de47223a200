/* Pipeline description files.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "wrpipelinefile.h"

#include "config.h"

#include <cstring>
#include <sstream>

namespace wayray {

std::vector<std::string>
pipeline_search_dirs (const std::string &extra_dir)
{
  std::vector<std::string> dirs;
  if (!extra_dir.empty ())
    dirs.push_back (extra_dir);
  if (const char *env = g_getenv ("WAYRAY_PIPELINES_PATH")) {
    gchar **parts = g_strsplit (env, ":", -1);
    for (gchar **p = parts; *p; p++)
      if (**p)
        dirs.push_back (*p);
    g_strfreev (parts);
  }
  dirs.push_back ("/etc/wayray/pipelines");
  dirs.push_back (WAYRAY_PIPELINES_DIR);
  return dirs;
}

bool
find_pipeline_file (const std::string &name, const std::string &extra_dir, std::string *path, GError **error)
{
  if (name.find ('/') != std::string::npos) {
    if (g_file_test (name.c_str (), G_FILE_TEST_IS_REGULAR)) {
      *path = name;
      return true;
    }
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT, "%s: no such pipeline file", name.c_str ());
    return false;
  }
  std::string tried;
  for (const std::string &dir : pipeline_search_dirs (extra_dir)) {
    std::string p = dir + "/" + name + ".pipeline";
    if (g_file_test (p.c_str (), G_FILE_TEST_IS_REGULAR)) {
      *path = p;
      return true;
    }
    tried += (tried.empty () ? "" : ", ") + dir;
  }
  g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT, "pipeline '%s' not found in %s", name.c_str (),
      tried.c_str ());
  return false;
}

static std::string
escape (const std::string &v)
{
  std::string out;
  for (char c : v) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out;
}

bool
read_pipeline_file (const std::string &path, PipelineFile *file, GError **error)
{
  gchar *contents = nullptr;
  GError *err = nullptr;
  if (!g_file_get_contents (path.c_str (), &contents, nullptr, &err)) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: %s", path.c_str (), err->message);
    g_error_free (err);
    return false;
  }
  file->path = path;
  file->text = contents;
  g_free (contents);
  return true;
}

bool
pipeline_uses (const PipelineFile &file, const char *variable)
{
  return file.text.find (std::string ("${") + variable + "}") != std::string::npos ||
      file.text.find (std::string ("%if ") + variable) != std::string::npos;
}

/* A conditional line (%if NAME, %else, %endif): applies it to @open (one
 * entry per %if: whether its lines are kept so far, whether it saw %else).
 * False with @error on a malformed one. */
static bool
conditional (const std::string &path, int lineno, const std::string &line, const Variables &vars,
    std::vector<std::pair<bool, bool>> &open, GError **error)
{
  std::istringstream words (line);
  std::string word, name, extra;
  words >> word >> name >> extra;
  auto fail = [&] (const std::string &why) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s:%d: %s", path.c_str (), lineno, why.c_str ());
    return false;
  };
  if (word == "%if") {
    if (name.empty () || !extra.empty ())
      return fail ("%if takes one variable name");
    auto it = vars.find (name);
    if (it == vars.end ())
      return fail ("unknown variable " + name + " in %if");
    bool outer = open.empty () || open.back ().first;
    open.push_back ({outer && !it->second.empty (), false});
    return true;
  }
  if (word == "%else" || word == "%endif") {
    if (!name.empty ())
      return fail (word + " takes nothing after it");
    if (open.empty ())
      return fail (word + " without %if");
    if (word == "%endif") {
      open.pop_back ();
      return true;
    }
    if (open.back ().second)
      return fail ("a second %else for one %if");
    bool outer = open.size () < 2 || open[open.size () - 2].first;
    /* the %if's lines were kept exactly when its condition held */
    open.back () = {outer && !open.back ().first, true};
    return true;
  }
  return fail ("unknown directive " + word + " (known: %if NAME, %else, %endif)");
}

bool
expand_pipeline (const PipelineFile &file, const Variables &vars, std::string *description, GError **error)
{
  const std::string &path = file.path;
  std::istringstream in (file.text);
  std::string line, out;
  int lineno = 0;
  std::vector<std::pair<bool, bool>> open;      /* the %if blocks around this line */
  std::vector<int> if_lines;                    /* and where they start */
  while (std::getline (in, line)) {
    lineno++;
    size_t first = line.find_first_not_of (" \t");
    if (first == std::string::npos || line[first] == '#')
      continue;
    if (line[first] == '%') {
      if (!conditional (path, lineno, line.substr (first), vars, open, error))
        return false;
      if (open.size () > if_lines.size ())
        if_lines.push_back (lineno);
      if_lines.resize (open.size ());
      continue;
    }
    if (!open.empty () && !open.back ().first)
      continue;
    std::string expanded;
    for (size_t i = 0; i < line.size ();) {
      if (line[i] == '$' && i + 1 < line.size () && line[i + 1] == '{') {
        size_t end = line.find ('}', i + 2);
        if (end == std::string::npos) {
          g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s:%d: unterminated ${ (missing '}')",
              path.c_str (), lineno);
          return false;
        }
        std::string name = line.substr (i + 2, end - i - 2);
        auto it = vars.find (name);
        if (it == vars.end ()) {
          std::string known;
          for (auto &kv : vars)
            known += (known.empty () ? "" : ", ") + kv.first;
          g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
              "%s:%d: unknown variable ${%s} (known: %s)", path.c_str (), lineno, name.c_str (), known.c_str ());
          return false;
        }
        expanded += escape (it->second);
        i = end + 1;
      } else {
        expanded += line[i++];
      }
    }
    out += expanded + "\n";
  }
  if (!open.empty ()) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s:%d: %%if without %%endif", path.c_str (),
        if_lines.back ());
    return false;
  }
  if (out.find_first_not_of (" \t\n") == std::string::npos) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: no pipeline in the file", path.c_str ());
    return false;
  }
  *description = out;
  return true;
}

/* The line of the file where a parse error most likely is: the first line
 * mentioning the quoted name gst_parse complains about. */
static int
line_of_error (const std::string &text, const char *message)
{
  const char *q1 = strchr (message, '"');
  const char *q2 = q1 ? strchr (q1 + 1, '"') : nullptr;
  if (!q1 || !q2 || q2 == q1 + 1)
    return 0;
  std::string needle (q1 + 1, q2 - q1 - 1);
  std::istringstream in (text);
  std::string line;
  int lineno = 0;
  while (std::getline (in, line)) {
    lineno++;
    size_t first = line.find_first_not_of (" \t");
    if (first != std::string::npos && line[first] != '#' && line.find (needle) != std::string::npos)
      return lineno;
  }
  return 0;
}

GstElement *
load_pipeline (const std::string &path, const Variables &vars, GError **error)
{
  PipelineFile file;
  if (!read_pipeline_file (path, &file, error))
    return nullptr;
  return load_pipeline (file, vars, error);
}

GstElement *
load_pipeline (const PipelineFile &file, const Variables &vars, GError **error)
{
  const std::string &path = file.path;
  std::string desc;
  if (!expand_pipeline (file, vars, &desc, error))
    return nullptr;
  GError *err = nullptr;
  GstParseContext *ctx = gst_parse_context_new ();
  GstElement *el = gst_parse_launch_full (desc.c_str (), ctx, GST_PARSE_FLAG_FATAL_ERRORS, &err);
  if (!el) {
    std::string where = path;
    int line = line_of_error (file.text, err ? err->message : "");
    gchar **missing = gst_parse_context_get_missing_elements (ctx);
    if (missing && missing[0] && line == 0) {
      std::string q = std::string ("\"") + missing[0] + "\"";
      line = line_of_error (file.text, q.c_str ());
    }
    g_strfreev (missing);
    if (line > 0)
      where += ":" + std::to_string (line);
    g_set_error (error, GST_PARSE_ERROR, err ? err->code : GST_PARSE_ERROR_SYNTAX, "%s: %s", where.c_str (),
        err ? err->message : "could not parse the pipeline");
    g_clear_error (&err);
    gst_parse_context_free (ctx);
    return nullptr;
  }
  gst_parse_context_free (ctx);
  if (!GST_IS_PIPELINE (el)) {
    GstElement *p = gst_pipeline_new (nullptr);
    gst_bin_add (GST_BIN (p), el);
    el = p;
  }
  return el;
}

GstElement *
require_element (GstElement *pipeline, const std::string &path, const char *name, const char *factory,
    GError **error)
{
  GstElement *el = gst_bin_get_by_name (GST_BIN (pipeline), name);
  if (!el) {
    g_set_error (error, GST_PARSE_ERROR, GST_PARSE_ERROR_NO_SUCH_ELEMENT,
        "%s: the pipeline needs a %s named '%s' (name=%s)", path.c_str (), factory, name, name);
    return nullptr;
  }
  GstElementFactory *f = gst_element_get_factory (el);
  if (factory && (!f || g_strcmp0 (GST_OBJECT_NAME (f), factory) != 0)) {
    g_set_error (error, GST_PARSE_ERROR, GST_PARSE_ERROR_NO_SUCH_ELEMENT,
        "%s: element '%s' must be a %s, not a %s", path.c_str (), name, factory,
        f ? GST_OBJECT_NAME (f) : "bin");
    gst_object_unref (el);
    return nullptr;
  }
  return el;
}

}  // namespace wayray
