/* conf.h - maildesk.conf (DESIGN 4): built-in defaults, GKeyFile
 * loading, and validation that reports every problem with file:line.
 *
 * Relative paths in the file (data_dir, rules, templates, password
 * files) are taken relative to the working directory, like the embedded
 * defaults; when a default path does not exist there, the installed copy
 * under $(pkgdatadir) is used instead. */
#ifndef MD_CONF_H
#define MD_CONF_H

#include <glib.h>

typedef struct {
	char *name;             /* the part after "imap." */
	char *url;
	char *user;
	char *password_file;
	char *ca_file;
	gboolean allow_plaintext;
	gboolean tls_verify;    /* false only when said explicitly */
	char *poll_interval;
	char *keepalive;        /* TCP keepalive: quiet time before the first probe */
	char *processed_folder;
	char *failed_folder;
	char *auth;             /* "login" (default) or "plain" */
} MdImapConf;

typedef struct {
	char *path;             /* the file read, or NULL on defaults */

	/* [desk] */
	char *name;
	char *domain;
	char *intake;
	char *ticket_prefix;
	char *data_dir;
	char *rules;
	char *templates;
	char *forms;
	char **agents;          /* optional list of agent addresses */
	char *ack_rate_limit;   /* "5/1h": at most 5 acknowledgements per sender an hour */
	char *agent_token;      /* "shared" (DESIGN 5.4) or "separate": see maildesk.conf(5) */
	char **authserv_id;     /* whose Authentication-Results to believe; empty: nobody's */
	gboolean require_sender_auth; /* a reply without the token needs a passing From */

	/* [lmtp] */
	char **listen;
	gint64 max_message_size;
	int max_recipients;
	int max_connections;
	int idle_timeout;       /* seconds */
	char *unix_group;       /* group of unix: listeners, e.g. "postfix"; NULL = the daemon's */
	char *unix_mode;        /* octal permissions of unix: listeners, "0660" */

	/* [smtp] */
	char *smtp_url;
	char *smtp_from;
	char *smtp_user;
	char *smtp_password_file;
	char *smtp_auth;        /* "password" (the relay's choice of mechanism) or "xoauth2" */
	char *smtp_ca_file;

	/* [calendar] */
	char *timezone;
	char *hours;
	char *holidays;

	/* [sla] durations by priority, NULL when the priority has none */
	char *first_response[5];        /* indexed like md_priorities */
	double remind_at[8];
	int n_remind_at;
	char *escalate_to;

	/* [followup] */
	char **waiting_reminders;
	char *auto_resolve_after;
	char *reopen_window;

	GPtrArray *imap;        /* MdImapConf* */

	GHashTable *key_lines;  /* private: where each key was read */
} MdConf;

/* Defaults only; never fails. Free with md_conf_free. */
MdConf *md_conf_new_defaults (void);

/* Reads PATH over the defaults.  Every problem found (syntax, unknown
 * group or key, bad value) is reported, one "file:line: message" per line
 * of the error's message (MD_ERROR_CONFIG). */
MdConf *md_conf_load (const char *path, GError **error);

/* The file to read: the one named, else ./maildesk.conf, else
 * /etc/maildesk/maildesk.conf, else NULL (embedded defaults). */
const char *md_conf_default_path (void);

/* Like md_conf_load, but returns the configuration even when it has
 * problems (bad values keep their defaults), with the problems in
 * *problems_r; NULL only when the file cannot be read.  For check-config,
 * which reports the problems of every layer at once. */
MdConf *md_conf_load_lenient (const char *path, GError **problems_r);

void md_conf_free (MdConf *conf);
/* [lmtp] unix_mode as permission bits, or 0 when it is not valid. */
guint md_conf_unix_mode (const MdConf *conf);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MdConf, md_conf_free)

/* "50M", "10k", "1G", plain bytes.  FALSE on junk. */
gboolean md_conf_parse_size (const char *text, gint64 *bytes_r);

/* An [imap.NAME] url taken apart: *TLS_R for imaps:// (imap:// is
 * STARTTLS), the host as written, the port (993 or 143 unless given) and
 * the mailbox (INBOX unless given).  Otherwise MD_ERROR_CONFIG saying what
 * is wrong ("url names no host").  Free *HOST_R and *MAILBOX_R with
 * g_free. */
gboolean md_imap_url_parse (const char *url, gboolean *tls_r, char **host_r, guint16 *port_r, char **mailbox_r,
                            GError **error);

/* Where in the loaded file a key (or group, with key NULL) was written:
 * "file:line", or the file name alone when unknown.  Free with g_free. */
char *md_conf_where (const MdConf *conf, const char *group, const char *key);

/* How a checker of one section reports a problem of KEY in it. */
typedef void (*MdConfProblemFunc) (const char *key, const char *message, gpointer data);

#endif
