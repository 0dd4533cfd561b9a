/* lmtp-recorder.c - the test application of lmtp-recorder.h. */
#include "config.h"

#include <string.h>

#include "md.h"
#include "lmtp-recorder.h"

struct _MdTestRecorder {
	int delay_ms;
	GMutex lock;
	GPtrArray *deliveries;  /* MdTestDelivery* */
	guint cross_thread;
	guint tickets;
	void (*hook) (const MdTestDelivery *d, gpointer data);
	gpointer hook_data;
};

typedef struct {
	MdTestRecorder *r;
	MdLmtpTransaction *tx;
	guint n;
	GError **errors;
	char **info;  /* n entries, NULL ones among them */
	GThread *caller;
} MdTestAnswer;

static void
delivery_free (gpointer p)
{
	MdTestDelivery *d = p;
	g_free (d->sender);
	g_strfreev (d->rcpts);
	g_free (d->sha256);
	g_free (d);
}

static gboolean
local_is (const char *address, const char *prefix)
{
	return g_ascii_strncasecmp (address, prefix, strlen (prefix)) == 0;
}

static gboolean
check_recipient (gpointer app, const char *address, const char *const *accepted, GError **error)
{
	const char *at = strrchr (address, '@');

	if (!at || g_ascii_strcasecmp (at + 1, "desk.test") != 0)
		g_set_error (error, MD_ERROR, MD_ERROR_BAD_DOMAIN, "%s: not our domain", address);
	else if (local_is (address, "nouser"))
		g_set_error (error, MD_ERROR, MD_ERROR_NO_USER, "%s: no such address", address);
	else if (local_is (address, "badtoken"))
		g_set_error (error, MD_ERROR, MD_ERROR_BAD_TOKEN, "%s: wrong token", address);
	else if (local_is (address, "rcptbusy"))
		g_set_error (error, MD_ERROR, MD_ERROR_DB_BUSY, "database is locked");
	else
		return TRUE;
	return FALSE;
}

static gpointer
answer (gpointer data)
{
	MdTestAnswer *a = data;

	if (a->r->delay_ms > 0)
		g_usleep ((gulong) a->r->delay_ms * 1000);
	g_mutex_lock (&a->r->lock);
	if (g_thread_self () != a->caller)
		a->r->cross_thread++;
	g_mutex_unlock (&a->r->lock);
	md_lmtp_transaction_done (a->tx, a->errors, (const char *const *) a->info);
	for (guint i = 0; i < a->n; i++)
		g_free (a->info[i]);
	g_free (a->info);
	g_free (a);
	return NULL;
}

static void
deliver (gpointer app, MdLmtpTransaction *tx, const char *sender, const char *const *rcpts,
         const char *sha256, gint64 size)
{
	MdTestRecorder *r = app;
	MdTestDelivery *d = g_new0 (MdTestDelivery, 1);
	guint n = g_strv_length ((char **) rcpts);
	MdTestAnswer *a = g_new0 (MdTestAnswer, 1);

	d->sender = g_strdup (sender);
	d->rcpts = g_strdupv ((char **) rcpts);
	d->sha256 = g_strdup (sha256);
	d->size = size;
	if (r->hook)
		r->hook (d, r->hook_data);
	a->r = r;
	a->tx = tx;
	a->caller = g_thread_self ();
	a->n = n;
	a->errors = g_new0 (GError *, n);
	a->info = g_new0 (char *, n);
	g_mutex_lock (&r->lock);
	g_ptr_array_add (r->deliveries, d);
	for (guint i = 0; i < n; i++) {
		if (local_is (rcpts[i], "temp"))
			a->errors[i] = g_error_new (MD_ERROR, MD_ERROR_DB_BUSY, "database is locked");
		else if (local_is (rcpts[i], "full"))
			a->errors[i] = g_error_new (MD_ERROR, MD_ERROR_DISK_FULL, "no space left");
		else if (local_is (rcpts[i], "denied"))
			a->errors[i] = g_error_new (MD_ERROR, MD_ERROR_DENIED, "not allowed");
		else
			a->info[i] = g_strdup_printf ("SUP-%u", ++r->tickets);
	}
	g_mutex_unlock (&r->lock);
	if (r->delay_ms < 0)
		answer (a);
	else
		g_thread_unref (g_thread_new ("recorder-answer", answer, a));
}

static const MdLmtpCallbacks callbacks = { check_recipient, deliver };

const MdLmtpCallbacks *
md_test_recorder_callbacks (void)
{
	return &callbacks;
}

MdTestRecorder *
md_test_recorder_new (int delay_ms)
{
	MdTestRecorder *r = g_new0 (MdTestRecorder, 1);
	r->delay_ms = delay_ms;
	g_mutex_init (&r->lock);
	r->deliveries = g_ptr_array_new_with_free_func (delivery_free);
	return r;
}

void
md_test_recorder_free (MdTestRecorder *r)
{
	if (!r)
		return;
	g_ptr_array_unref (r->deliveries);
	g_mutex_clear (&r->lock);
	g_free (r);
}

void
md_test_recorder_set_hook (MdTestRecorder *r, void (*hook) (const MdTestDelivery *d, gpointer data),
                           gpointer data)
{
	r->hook = hook;
	r->hook_data = data;
}

guint
md_test_recorder_count (MdTestRecorder *r)
{
	g_mutex_lock (&r->lock);
	guint n = r->deliveries->len;
	g_mutex_unlock (&r->lock);
	return n;
}

const MdTestDelivery *
md_test_recorder_get (MdTestRecorder *r, guint i)
{
	g_mutex_lock (&r->lock);
	const MdTestDelivery *d = i < r->deliveries->len ? r->deliveries->pdata[i] : NULL;
	g_mutex_unlock (&r->lock);
	return d;
}

guint
md_test_recorder_cross_thread_answers (MdTestRecorder *r)
{
	g_mutex_lock (&r->lock);
	guint n = r->cross_thread;
	g_mutex_unlock (&r->lock);
	return n;
}
