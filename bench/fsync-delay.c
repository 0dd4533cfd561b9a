/* bench/fsync-delay.c - an LD_PRELOAD shim that adds latency to every
 * fsync and fdatasync, to model a real disk (~1 ms) on a machine whose
 * virtual disk syncs in ~0.1 ms.  The delay is FSYNC_DELAY_US
 * microseconds (default 1000), after the real call.  bench/lmtp.sh
 * builds it:
 *   cc -shared -fPIC -o fsync-delay.so bench/fsync-delay.c -ldl
 *   LD_PRELOAD=./fsync-delay.so maildesk serve
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

static long
delay_us (void)
{
	static long us = -1;
	if (us < 0) {
		const char *env = getenv ("FSYNC_DELAY_US");
		us = env ? atol (env) : 1000;
	}
	return us;
}

/* Sleeps, keeping the errno of the real call for its caller. */
static void
delay (void)
{
	int saved = errno;
	long us = delay_us ();
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	while (nanosleep (&ts, &ts) != 0 && errno == EINTR)
		;
	errno = saved;
}

int
fsync (int fd)
{
	static int (*real) (int);
	if (!real)
		real = (int (*) (int)) dlsym (RTLD_NEXT, "fsync");
	int rc = real (fd);
	delay ();
	return rc;
}

int
fdatasync (int fd)
{
	static int (*real) (int);
	if (!real)
		real = (int (*) (int)) dlsym (RTLD_NEXT, "fdatasync");
	int rc = real (fd);
	delay ();
	return rc;
}
