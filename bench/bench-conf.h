/* bench-conf.h - the configuration the in-process benchmarks share. */
#ifndef MD_BENCH_CONF_H
#define MD_BENCH_CONF_H

#include "conf.h"

/* The embedded defaults with the data under DIR/var and the shipped
 * rules, templates and intake forms of $MD_TOP_SRCDIR (or "."), named
 * outright: relative defaults would follow the working directory.
 * Free with md_conf_free (md_desk_open takes it). */
MdConf *md_bench_conf_new (const char *dir);

#endif
