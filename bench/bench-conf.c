/* bench-conf.c - the configuration the in-process benchmarks share. */
#include "config.h"

#include "bench-conf.h"

MdConf *
md_bench_conf_new (const char *dir)
{
	const char *top = g_getenv ("MD_TOP_SRCDIR") ? g_getenv ("MD_TOP_SRCDIR") : ".";
	MdConf *conf = md_conf_new_defaults ();

	g_free (conf->data_dir);
	conf->data_dir = g_build_filename (dir, "var", NULL);
	g_free (conf->rules);
	conf->rules = g_build_filename (top, "filters", "default.rules", NULL);
	g_free (conf->templates);
	conf->templates = g_build_filename (top, "templates", NULL);
	g_free (conf->forms);
	conf->forms = g_build_filename (top, "filters", "forms.conf", NULL);
	return conf;
}
