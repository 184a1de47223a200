/* Pipeline description files: gst-launch syntax with ${VARIABLE}
 * substitution and # comments, shared by wayrayd and wayray-client.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>

#include <map>
#include <string>
#include <vector>

namespace wayray {

using Variables = std::map<std::string, std::string>;

/* Where NAME.pipeline is looked for, first match wins: $WAYRAY_PIPELINES_PATH
 * (colon-separated), /etc/wayray/pipelines, then the installed data dir. */
std::vector<std::string> pipeline_search_dirs (const std::string &extra_dir = "");

/* Finds NAME.pipeline (or NAME when it is a path). */
bool find_pipeline_file (const std::string &name, const std::string &extra_dir, std::string *path,
    GError **error);

/* A pipeline file as read: its path (for error messages) and its text. */
struct PipelineFile {
  std::string path;
  std::string text;
};

bool read_pipeline_file (const std::string &path, PipelineFile *file, GError **error);

/* TRUE when @file refers to ${@variable}: values that are costly to find
 * (probing H.264 encoders and decoders loads their plugins) are found only
 * for files that use them. */
bool pipeline_uses (const PipelineFile &file, const char *variable);

/* Drops comments, substitutes ${VAR}. Values are inserted with `"` and `\`
 * escaped, so `prop="${VAR}"` is safe for any value. Lines between
 * `%if VAR` and `%else` or `%endif` are kept only when VAR is not empty,
 * those between `%else` and `%endif` only when it is (blocks nest).
 * Errors say FILE:LINE: reason. */
bool expand_pipeline (const PipelineFile &file, const Variables &vars, std::string *description, GError **error);

/* expand + gst_parse_launch, with parse errors mapped to FILE:LINE. The
 * result is a GstPipeline. */
GstElement *load_pipeline (const PipelineFile &file, const Variables &vars, GError **error);
/* The same, reading the file first. */
GstElement *load_pipeline (const std::string &path, const Variables &vars, GError **error);

/* The element named @name in @pipeline, checked to come from @factory;
 * a clear error if the file lacks it. Returned reference is the caller's. */
GstElement *require_element (GstElement *pipeline, const std::string &path, const char *name,
    const char *factory, GError **error);

}  // namespace wayray
