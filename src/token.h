/* token.h - reply tokens and the desk's addresses (DESIGN 5.4).
 *
 * A ticket's reply address is INTAKE+PREFIX-N.TOKEN@DOMAIN where TOKEN is
 * the first 10 characters of the lowercase base32 HMAC-SHA256 of the
 * decimal ticket number under the desk's secret key.  Tokens compare
 * case-insensitively because some MTAs fold the case of local parts. */
#ifndef MD_TOKEN_H
#define MD_TOKEN_H

#include <glib.h>

#define MD_TOKEN_LEN 10

/* Free with g_free. */
char *md_token_compute (GBytes *secret, gint64 ticket_id);

/* Whether GIVEN (from an address) is the token EXPECTED, ignoring ASCII
 * case, in a time that depends on GIVEN's length only, not on the bytes
 * of either. */
gboolean md_token_equal (const char *given, const char *expected);

/* Loads DATA_DIR/secret.key, creating 32 random bytes with mode 0600 on
 * first use (under a lock of DATA_DIR, so processes starting together
 * share one key; an empty file a crash left is replaced).  Free with
 * g_bytes_unref. */
GBytes *md_token_load_secret (const char *data_dir, GError **error);

typedef enum {
	MD_ADDRESS_INTAKE,      /* intake@domain */
	MD_ADDRESS_TICKET,      /* intake+PREFIX-N.TOKEN@domain with a valid token */
	MD_ADDRESS_BAD_TOKEN,   /* a ticket sub-address whose token is wrong */
	MD_ADDRESS_OTHER_LOCAL, /* some other local part of our domain */
	MD_ADDRESS_FOREIGN,     /* another domain */
} MdAddressKind;

typedef struct {
	const char *domain;
	const char *intake;
	const char *prefix;
	GBytes *secret;
	gboolean agent_tokens;  /* agent_token = separate: agents reply with their own */
} MdAddressing;

/* Classifies ADDRESS; for TICKET and BAD_TOKEN *ticket_id_r is set. */
MdAddressKind md_address_classify (const MdAddressing *a, const char *address, gint64 *ticket_id_r);

/* "support+SUP-12.abcdefghij@support.example.com"; free with g_free. */
char *md_address_for_ticket (const MdAddressing *a, gint64 ticket_id);

/* With agent_tokens set, agents get a ticket address of their own, whose
 * token is the HMAC of "agent:N" rather than of N, in the mail the desk
 * sends them; only mail to it proves an agent (the customer's token is
 * in every mail the customer side gets).  Without, the same as
 * md_address_for_ticket.  Free with g_free. */
char *md_address_for_agents (const MdAddressing *a, gint64 ticket_id);
/* Whether ADDRESS is a ticket address carrying its agent token (only
 * with agent_tokens set; md_address_classify says TICKET for both). */
gboolean md_address_has_agent_token (const MdAddressing *a, const char *address);

/* "SUP-12"; free with g_free. */
char *md_ticket_key (const char *prefix, gint64 ticket_id);
/* Parses "12", "SUP-12" or "sup-12"; 0 when it is neither. */
gint64 md_ticket_key_parse (const char *prefix, const char *text);

#endif
