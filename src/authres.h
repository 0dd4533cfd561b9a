/* authres.h - what the receiving MTA found about a message's From
 * (Authentication-Results, RFC 8601): passed, failed, or nothing known.
 *
 * Only results stamped with an authserv-id the desk trusts count: any
 * sender can write such a header, and only the desk's own MTA, which
 * removes copies claiming its name (RFC 8601 section 5), can be
 * believed. */
#ifndef MD_AUTHRES_H
#define MD_AUTHRES_H

#include <glib.h>

typedef enum {
	MD_SENDER_AUTH_NONE,  /* no trusted verdict on the From domain */
	MD_SENDER_AUTH_PASS,  /* DMARC passed, or DKIM/SPF passed for the From domain */
	MD_SENDER_AUTH_FAIL,  /* DMARC failed */
} MdSenderAuth;

const char *md_sender_auth_name (MdSenderAuth auth);

/* HEADERS: the Authentication-Results values, topmost first (the order
 * MTAs prepend them in, so the first of each method is the nearest
 * hop's).  TRUSTED: authserv-ids, compared without case.  FROM_ADDR: the
 * message's From address, NULL when it has none. */
MdSenderAuth md_authres_verdict (const char *const *headers, const char *const *trusted, const char *from_addr);

#endif
