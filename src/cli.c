/* cli.c - what every subcommand shares: loading the configuration and
 * the desk, option parsing, and printing errors once. */
#include "config.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "md.h"

gboolean
md_cli_parse_age (const char *option, const char *text, gint64 *seconds_r)
{
	g_autoptr (GError) error = NULL;
	guint64 days;
	MdDuration d;

	if (g_ascii_string_to_unsigned (text, 10, 0, MD_DURATION_MAX_DAYS, &days, NULL)) {
		*seconds_r = (gint64) days * 86400;
		return TRUE;
	}
	if (!md_duration_parse (text, &d, &error)) {
		fprintf (stderr, "maildesk: %s: %s\n", option, error->message);
		return FALSE;
	}
	if (d.unit != MD_DURATION_SECONDS) {
		fprintf (stderr, "maildesk: %s takes days or elapsed time (30, 30d, 12h), not business time: %s\n",
		         option, text);
		return FALSE;
	}
	*seconds_r = d.amount;
	return TRUE;
}

void
md_cli_error (const GError *error)
{
	fprintf (stderr, "maildesk: %s\n", error ? error->message : "unknown error");
}

gboolean
md_cli_no_operands (const char *name, int argc, char **argv, const char *hint)
{
	if (argc <= 1)
		return TRUE;
	fprintf (stderr, "maildesk %s: unexpected argument \"%s\"%s%s\n", name, argv[1], hint ? "; " : "",
	         hint ? hint : "");
	return FALSE;
}

int
md_cli_usage (int argc, char **argv, const char *usage)
{
	gboolean help = argc > 1 && (!strcmp (argv[1], "-h") || !strcmp (argv[1], "--help"));
	fputs (usage, help ? stdout : stderr);
	return help ? MD_EX_OK : MD_EX_USAGE;
}

MdConf *
md_cli_load_conf (void)
{
	g_autoptr (GError) error = NULL;
	const char *path = md_cli.config_path ? md_cli.config_path : md_conf_default_path ();

	if (!path)
		return md_conf_new_defaults ();
	MdConf *conf = md_conf_load (path, &error);
	if (!conf)
		fprintf (stderr, "%s\n", error->message);
	return conf;
}

static MdDesk *
open_desk (MdDesk *(*open) (MdConf *, GError **))
{
	g_autoptr (GError) error = NULL;
	MdConf *conf = md_cli_load_conf ();
	if (!conf)
		return NULL;
	MdDesk *desk = open (conf, &error);
	if (!desk)
		md_cli_error (error);
	return desk;
}

MdDesk *
md_cli_open_desk (void)
{
	return open_desk (md_desk_open);
}

MdDesk *
md_cli_open_reader (void)
{
	return open_desk (md_desk_open_reader);
}

gboolean
md_cli_parse (const char *name, const char *params, const char *summary, GOptionEntry *entries, int *argc,
              char ***argv)
{
	g_autoptr (GError) error = NULL;
	g_autofree char *title = g_strdup_printf ("%s%s%s", name, params ? " " : "", params ? params : "");
	g_autoptr (GOptionContext) ctx = g_option_context_new (title);

	/* The global -c also after the command (`maildesk deliver -c F`),
	 * as scripts and MTA pipe lines write it: main() has taken its FILE
	 * already (some commands open the desk before they parse); here it
	 * is only accepted, and listed in --help. */
	static char *config_after;
	GOptionEntry global[] = {
		{ "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_after, "configuration file", "FILE" },
		{ NULL },
	};
	g_option_context_set_summary (ctx, summary);
	if (entries)
		g_option_context_add_main_entries (ctx, entries, NULL);
	g_option_context_add_main_entries (ctx, global, NULL);
	if (!g_option_context_parse (ctx, argc, argv, &error)) {
		fprintf (stderr, "maildesk %s: %s\n", name, error->message);
		g_autofree char *help = g_option_context_get_help (ctx, TRUE, NULL);
		fputs (help, stderr);
		return FALSE;
	}
	return TRUE;
}

void
md_json_add_string (JsonBuilder *b, const char *name, const char *value)
{
	json_builder_set_member_name (b, name);
	if (value)
		json_builder_add_string_value (b, value);
	else
		json_builder_add_null_value (b);
}

void
md_json_add_time (JsonBuilder *b, const char *name, gint64 t)
{
	g_autofree char *iso = t ? md_time_iso_utc (t) : NULL;
	md_json_add_string (b, name, iso);
}

/* TEXT on standard output, each line after the first led by INDENT.
 * json-glib 1.6 leaves U+001F unescaped; a raw control byte can only
 * stand inside a string, so escaping it here is always right. */
static void
put_json (const char *text, const char *indent)
{
	for (const char *p = text; *p; p++) {
		if (*p == 0x1f)
			fputs ("\\u001f", stdout);
		else
			putchar (*p);
		if (*p == '\n')
			fputs (indent, stdout);
	}
}

static char *
pretty_json (JsonBuilder *b)
{
	g_autoptr (JsonNode) root = json_builder_get_root (b);
	g_autoptr (JsonGenerator) gen = json_generator_new ();
	json_generator_set_pretty (gen, TRUE);
	json_generator_set_root (gen, root);
	return json_generator_to_data (gen, NULL);
}

void
md_json_print (JsonBuilder *b)
{
	g_autofree char *text = pretty_json (b);
	put_json (text, "");
	putchar ('\n');
}

void
md_json_print_element (JsonBuilder *b, guint index)
{
	g_autofree char *text = pretty_json (b);
	fputs (index ? ",\n  " : "[\n  ", stdout);
	put_json (text, "  ");
}

void
md_json_print_array_end (guint n)
{
	fputs (n ? "\n]\n" : "[]\n", stdout);
}
