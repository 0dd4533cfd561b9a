/* token.c - HMAC reply tokens (HMAC-SHA256) and the classification of
 * addresses of the desk's domain. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "md.h"
#include "spool.h"
#include "token.h"

/* RFC 4648 base32 alphabet, lowercased. */
static const char base32[] = "abcdefghijklmnopqrstuvwxyz234567";

/* Per thread: the last token made (with the secret it was made with),
 * because notify asks for the same ticket's address several times in a
 * row (its variables, each mail's Reply-To). */
typedef struct {
	GBytes *secret;
	gint64 ticket_id;
	char token[MD_TOKEN_LEN + 1];
} TokenCache;

static void
token_cache_free (gpointer data)
{
	TokenCache *cache = data;
	g_bytes_unref (cache->secret);
	g_free (cache);
}

static GPrivate token_cache = G_PRIVATE_INIT (token_cache_free);

static TokenCache *
token_cache_for (GBytes *secret)
{
	TokenCache *cache = g_private_get (&token_cache);
	if (cache && g_bytes_equal (cache->secret, secret))
		return cache;
	cache = g_new0 (TokenCache, 1);
	cache->secret = g_bytes_ref (secret);
	g_private_replace (&token_cache, cache);
	return cache;
}

/* HMAC-SHA256 of TEXT under the secret: by GnuTLS, whose nettle uses the
 * CPU's SHA instructions (several times faster than GLib's GHmac, even
 * keyed anew each time); GLib's when GnuTLS refuses. */
static void
hmac_sha256 (GBytes *secret, const char *text, guint8 digest[32])
{
	gsize key_len = 0, digest_len = 32;
	const guchar *key = g_bytes_get_data (secret, &key_len);
	if (gnutls_hmac_fast (GNUTLS_MAC_SHA256, key, key_len, text, strlen (text), digest) >= 0)
		return;
	g_autoptr (GHmac) hmac = g_hmac_new (G_CHECKSUM_SHA256, key, key_len);
	g_hmac_update (hmac, (const guchar *) text, (gssize) strlen (text));
	g_hmac_get_digest (hmac, digest, &digest_len);
}

/* The first MD_TOKEN_LEN base32 characters of HMAC-SHA256 (TEXT). */
static void
token_of (TokenCache *cache, const char *text, char out[MD_TOKEN_LEN + 1])
{
	guint8 digest[32];

	hmac_sha256 (cache->secret, text, digest);

	/* 10 base32 characters take 50 bits: the first 7 bytes are enough. */
	guint64 bits = 0;
	for (int i = 0; i < 7; i++)
		bits = (bits << 8) | digest[i];
	bits <<= 8;  /* the 56 bits to the top of the word */
	for (int i = 0; i < MD_TOKEN_LEN; i++)
		out[i] = base32[(bits >> (64 - 5 * (i + 1))) & 31];
	out[MD_TOKEN_LEN] = 0;
}

char *
md_token_compute (GBytes *secret, gint64 ticket_id)
{
	TokenCache *cache = token_cache_for (secret);
	if (cache->token[0] && cache->ticket_id == ticket_id)
		return g_strdup (cache->token);

	char number[32];
	g_snprintf (number, sizeof number, "%" G_GINT64_FORMAT, ticket_id);
	token_of (cache, number, cache->token);
	cache->ticket_id = ticket_id;
	return g_strdup (cache->token);
}

static char *
agent_token (GBytes *secret, gint64 ticket_id)
{
	char text[40], token[MD_TOKEN_LEN + 1];
	g_snprintf (text, sizeof text, "agent:%" G_GINT64_FORMAT, ticket_id);
	token_of (token_cache_for (secret), text, token);
	return g_strdup (token);
}

/* A key of at least 16 bytes in PATH, or NULL with *LEN_R its length
 * (-1 when there is no file). */
static GBytes *
read_secret (const char *path, gssize *len_r)
{
	g_autofree char *data = NULL;
	gsize len = 0;
	*len_r = -1;
	if (!g_file_get_contents (path, &data, &len, NULL))
		return NULL;
	*len_r = (gssize) len;
	return len >= 16 ? g_bytes_new_take (g_steal_pointer (&data), len) : NULL;
}

/* Under the lock of FD_DIR: a new key, written to a file of its own,
 * fsync'd and renamed to secret.key, so the name never holds a part of
 * a key.  An empty secret.key is replaced: an older maildesk that died
 * between creating the file and writing the key left it, and no key was
 * ever taken from it. */
static GBytes *
create_secret (const char *data_dir, const char *path, GError **error)
{
	gssize len;
	GBytes *key = read_secret (path, &len);
	if (key)
		return key;  /* another process made it while we waited */
	if (len > 0) {
		g_set_error (error, MD_ERROR, MD_ERROR_CONFIG, "%s holds %" G_GSSIZE_FORMAT " bytes, fewer than the 16 "
		             "a key needs; remove it only if no reply token made with it matters", path, len);
		return NULL;
	}
	guint8 bytes[32];
	if (getrandom (bytes, sizeof bytes, 0) != (ssize_t) sizeof bytes) {
		md_set_errno_error (error, errno, "no random bytes for", path);
		return NULL;
	}
	g_autofree char *tmp = g_strdup_printf ("%s.%d.tmp", path, (int) getpid ());
	int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		md_set_errno_error (error, errno, "cannot create", tmp);
		return NULL;
	}
	gboolean ok = write (fd, bytes, sizeof bytes) == (ssize_t) sizeof bytes && fsync (fd) == 0;
	int errsv = errno;
	close (fd);
	if (!ok || rename (tmp, path) < 0) {
		errsv = ok ? errno : errsv;
		unlink (tmp);
		md_set_errno_error (error, errsv, "cannot write", path);
		return NULL;
	}
	int dfd = open (data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync (dfd) < 0) {
		md_set_errno_error (error, errno, "cannot fsync directory", data_dir);
		if (dfd >= 0)
			close (dfd);
		return NULL;
	}
	close (dfd);
	return g_bytes_new (bytes, sizeof bytes);
}

GBytes *
md_token_load_secret (const char *data_dir, GError **error)
{
	g_autofree char *path = g_build_filename (data_dir, "secret.key", NULL);
	gssize len;
	GBytes *key = read_secret (path, &len);
	if (key)
		return key;

	if (g_mkdir_with_parents (data_dir, 0700) < 0) {
		md_set_errno_error (error, errno, "cannot create", data_dir);
		return NULL;
	}
	/* Processes starting at once on a new desk (eight delivers) make
	 * the key one at a time, and all but the first read the first's. */
	int lock = open (data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock < 0 || flock (lock, LOCK_EX) < 0) {
		md_set_errno_error (error, errno, "cannot lock", data_dir);
		if (lock >= 0)
			close (lock);
		return NULL;
	}
	key = create_secret (data_dir, path, error);
	close (lock);  /* releases the lock */
	return key;
}

char *
md_ticket_key (const char *prefix, gint64 ticket_id)
{
	return g_strdup_printf ("%s-%" G_GINT64_FORMAT, prefix, ticket_id);
}

static gint64
parse_number (const char *text, gsize len)
{
	if (len == 0 || len > 15)
		return 0;
	gint64 n = 0;
	for (gsize i = 0; i < len; i++) {
		if (!g_ascii_isdigit (text[i]))
			return 0;
		n = n * 10 + (text[i] - '0');
	}
	return n;
}

gint64
md_ticket_key_parse (const char *prefix, const char *text)
{
	gsize plen = strlen (prefix);
	if (g_ascii_strncasecmp (text, prefix, plen) == 0 && text[plen] == '-')
		text += plen + 1;
	return parse_number (text, strlen (text));
}

/* intake+PREFIX-N.TOKEN@domain */
static char *
ticket_address (const MdAddressing *a, gint64 ticket_id, const char *token)
{
	return g_strdup_printf ("%s+%s-%" G_GINT64_FORMAT ".%s@%s", a->intake, a->prefix, ticket_id, token, a->domain);
}

char *
md_address_for_ticket (const MdAddressing *a, gint64 ticket_id)
{
	g_autofree char *token = md_token_compute (a->secret, ticket_id);
	return ticket_address (a, ticket_id, token);
}

char *
md_address_for_agents (const MdAddressing *a, gint64 ticket_id)
{
	if (!a->agent_tokens)
		return md_address_for_ticket (a, ticket_id);
	g_autofree char *token = agent_token (a->secret, ticket_id);
	return ticket_address (a, ticket_id, token);
}

gboolean
md_token_equal (const char *given, const char *expected)
{
	/* Lengths are no secret: every sender knows a token's. */
	if (strlen (given) != MD_TOKEN_LEN || strlen (expected) != MD_TOKEN_LEN)
		return FALSE;
	/* Every byte is looked at and the differences only ORed together: an
	 * answer at the first wrong character (strcasecmp) would tell a
	 * forger, by its time over many tries, how much of a guess was
	 * right.  Case folds by arithmetic, not by a branch on the byte:
	 * the 0x20 bit is set on A..Z only, so '@' is no '`' and 0x12 no '2'. */
	guint diff = 0;
	for (gsize i = 0; i < MD_TOKEN_LEN; i++) {
		guint g = (guchar) given[i], e = (guchar) expected[i];
		g |= (guint) (g - 'A' < 26u) << 5;
		e |= (guint) (e - 'A' < 26u) << 5;
		diff |= g ^ e;
	}
	return diff == 0;
}

/* md_address_classify; for TICKET, *AGENT_R (when not NULL) says whether
 * the token was the agents' one (agent_tokens set) rather than the
 * customer's. */
static MdAddressKind
classify (const MdAddressing *a, const char *address, gint64 *ticket_id_r, gboolean *agent_r)
{
	const char *at = strrchr (address, '@');
	if (!at || g_ascii_strcasecmp (at + 1, a->domain) != 0)
		return MD_ADDRESS_FOREIGN;

	g_autofree char *local = g_strndup (address, (gsize) (at - address));
	char *plus = strchr (local, '+');
	if (plus)
		*plus = 0;
	if (g_ascii_strcasecmp (local, a->intake) != 0)
		return MD_ADDRESS_OTHER_LOCAL;
	if (!plus)
		return MD_ADDRESS_INTAKE;

	/* sub-address: PREFIX-N.TOKEN */
	const char *sub = plus + 1;
	gsize plen = strlen (a->prefix);
	if (g_ascii_strncasecmp (sub, a->prefix, plen) != 0 || sub[plen] != '-')
		return MD_ADDRESS_INTAKE;  /* support+anything: plain intake, as MTAs do */
	const char *num = sub + plen + 1;
	const char *dot = strchr (num, '.');
	gint64 id = parse_number (num, dot ? (gsize) (dot - num) : strlen (num));
	if (!id)
		return MD_ADDRESS_BAD_TOKEN;
	if (ticket_id_r)
		*ticket_id_r = id;
	if (!dot)
		return MD_ADDRESS_BAD_TOKEN;
	g_autofree char *expected = md_token_compute (a->secret, id);
	if (md_token_equal (dot + 1, expected))
		return MD_ADDRESS_TICKET;
	g_autofree char *for_agents = a->agent_tokens ? agent_token (a->secret, id) : NULL;
	if (!for_agents || !md_token_equal (dot + 1, for_agents))
		return MD_ADDRESS_BAD_TOKEN;
	if (agent_r)
		*agent_r = TRUE;
	return MD_ADDRESS_TICKET;
}

gboolean
md_address_has_agent_token (const MdAddressing *a, const char *address)
{
	gboolean agent = FALSE;
	/* every part compares without case: domains, and the local parts we
	 * make; the token in constant time (md_token_equal) */
	return a->agent_tokens && classify (a, address, NULL, &agent) == MD_ADDRESS_TICKET && agent;
}

MdAddressKind
md_address_classify (const MdAddressing *a, const char *address, gint64 *ticket_id_r)
{
	return classify (a, address, ticket_id_r, NULL);
}
