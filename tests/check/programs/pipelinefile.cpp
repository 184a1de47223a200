/* Pipeline description files (daemon/wrpipelinefile): variables, comments
 * and %if blocks, and the errors operators see for broken files.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>

#include "wrpipelinefile.h"

using wayray::PipelineFile;
using wayray::Variables;

static std::string
expand (const std::string &text, const Variables &vars, std::string *error = nullptr)
{
  PipelineFile f = {"test.pipeline", text};
  std::string out;
  GError *err = nullptr;
  if (!wayray::expand_pipeline (f, vars, &out, &err)) {
    if (error)
      *error = err->message;
    g_error_free (err);
    return "<error>";
  }
  return out;
}

static void
expect_expansion (const std::string &text, const Variables &vars, const char *expected)
{
  std::string got = expand (text, vars);
  fail_unless_equals_string (got.c_str (), expected);
}

GST_START_TEST (test_variables_and_comments)
{
  expect_expansion ("# a comment\nfakesrc name=\"${N}\"\n  # another\n ! fakesink\n",
          { {"N", "a\"b"} }, "fakesrc name=\"a\\\"b\"\n ! fakesink\n");
  std::string e;
  expand ("fakesrc\n! ${NOPE}\n", { {"N", "x"} }, &e);
  fail_unless (e.find ("test.pipeline:2: unknown variable ${NOPE}") == 0, "%s", e.c_str ());
}
GST_END_TEST;

GST_START_TEST (test_conditional_blocks)
{
  const char *text =
      "a\n"
      "%if ENC\n"
      "b ${ENC}\n"
      "  %if DEC\n"
      "c\n"
      "  %else\n"
      "d\n"
      "  %endif\n"
      "%else\n"
      "e\n"
      "%endif\n"
      "f\n";
  expect_expansion (text, { {"ENC", "x264enc"}, {"DEC", "avdec_h264"} }, "a\nb x264enc\nc\nf\n");
  expect_expansion (text, { {"ENC", "x264enc"}, {"DEC", ""} }, "a\nb x264enc\nd\nf\n");
  /* an empty value: the %else lines; nested blocks inside a dropped one stay dropped */
  expect_expansion (text, { {"ENC", ""}, {"DEC", "avdec_h264"} }, "a\ne\nf\n");
  expect_expansion (text, { {"ENC", ""}, {"DEC", ""} }, "a\ne\nf\n");
  PipelineFile f = {"p", text};
  fail_unless (wayray::pipeline_uses (f, "DEC"));
  fail_unless (!wayray::pipeline_uses (f, "OTHER"));
}
GST_END_TEST;

GST_START_TEST (test_broken_conditionals)
{
  struct {
    const char *text, *error;
  } cases[] = {
    {"a\n%if NOPE\nb\n%endif\n", "test.pipeline:2: unknown variable NOPE in %if"},
    {"a\n%if V\nb\n", "test.pipeline:2: %if without %endif"},
    {"a\n%if V\n%if V\nb\n%endif\n", "test.pipeline:2: %if without %endif"},
    {"a\n%endif\n", "test.pipeline:2: %endif without %if"},
    {"a\n%else\n", "test.pipeline:2: %else without %if"},
    {"%if V\na\n%else\nb\n%else\nc\n%endif\n", "test.pipeline:5: a second %else for one %if"},
    {"%if\na\n%endif\n", "test.pipeline:1: %if takes one variable name"},
    {"%if V W\na\n%endif\n", "test.pipeline:1: %if takes one variable name"},
    {"%if V\na\n%endif V\n", "test.pipeline:3: %endif takes nothing after it"},
    {"%ifdef V\na\n", "test.pipeline:1: unknown directive %ifdef"},
    {"%if V\n%endif\n", "test.pipeline: no pipeline in the file"},
  };
  for (const auto &c : cases) {
    std::string e;
    std::string got = expand (c.text, { {"V", "x"} }, &e);
    fail_unless_equals_string (got.c_str (), "<error>");
    fail_unless (e.find (c.error) == 0, "for %s: %s", c.text, e.c_str ());
  }
}
GST_END_TEST;

static Suite *
pipelinefile_suite (void)
{
  Suite *s = suite_create ("pipelinefile");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_variables_and_comments);
  tcase_add_test (tc, test_conditional_blocks);
  tcase_add_test (tc, test_broken_conditionals);
  return s;
}

GST_CHECK_MAIN (pipelinefile);
