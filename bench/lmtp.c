/* bench/lmtp.c - a bounded LMTP load client (issue 3, "Speed and scale").
 *
 * Load mode forks SESSIONS client processes.  Each connects, says LHLO,
 * waits at a common start line, then for SECONDS sends 4 KB messages,
 * each with its own Message-ID, sender and subject (a server that
 * deduplicates must store every one), pipelining MAIL, RCPT and DATA as
 * Postfix does.  It times each message from the end of its DATA (the
 * final dot sent) to the 250 reply.  The parent prints one line of
 * key=value figures: messages/s, p50/p99 of that latency, errors, and,
 * given the server's pid, the CPU it used (utime+stime from
 * /proc/PID/stat, over the same interval) and its peak RSS (VmHWM).
 *
 * Idle mode opens IDLE connections from one process, says LHLO on each,
 * and prints the server's RSS while they are all open.
 *
 *   bench/lmtp [-s SESSIONS] [-t SECONDS] [-p SERVER_PID] ADDRESS
 *   bench/lmtp -i IDLE [-p SERVER_PID] ADDRESS
 * ADDRESS is host:port (IPv4) or unix:/path.  Exits 1 on any error.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SESSIONS 512
#define MAX_IDLE 4096
#define MAX_SECONDS 600
#define MAX_SAMPLES 200000          /* latencies kept per session */
#define MESSAGE_SIZE 4096
#define REPLY_TIMEOUT_S 60

typedef struct {
	uint32_t count;                 /* messages answered 250 */
	uint32_t errors;                /* anything else */
	uint32_t latency_us[MAX_SAMPLES];
} SessionResult;

typedef struct {
	int fd;
	char buf[8192];
	size_t start, end;
} Conn;

static const char *address;
static char run_id[32];

static void
die (const char *fmt, ...)
{
	va_list ap;
	va_start (ap, fmt);
	fprintf (stderr, "bench/lmtp: ");
	vfprintf (stderr, fmt, ap);
	fprintf (stderr, "\n");
	va_end (ap);
	exit (1);
}

static double
now_s (void)
{
	struct timespec ts;
	clock_gettime (CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
connect_to (const char *addr)
{
	int fd;
	if (strncmp (addr, "unix:", 5) == 0) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		if (strlen (addr + 5) >= sizeof sun.sun_path)
			die ("socket path too long: %s", addr + 5);
		strcpy (sun.sun_path, addr + 5);
		fd = socket (AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || connect (fd, (struct sockaddr *) &sun, sizeof sun) < 0)
			die ("connect %s: %s", addr, strerror (errno));
		return fd;
	}
	char host[64];
	const char *colon = strrchr (addr, ':');
	if (!colon || (size_t) (colon - addr) >= sizeof host)
		die ("address is host:port or unix:/path, not %s", addr);
	memcpy (host, addr, colon - addr);
	host[colon - addr] = '\0';
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons (atoi (colon + 1)) };
	if (inet_pton (AF_INET, host, &sin.sin_addr) != 1)
		die ("not an IPv4 address: %s", host);
	fd = socket (AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect (fd, (struct sockaddr *) &sin, sizeof sin) < 0)
		die ("connect %s: %s", addr, strerror (errno));
	int one = 1;
	setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static void
send_all (Conn *c, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send (c->fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die ("send: %s", n < 0 ? strerror (errno) : "closed");
		data += n;
		len -= (size_t) n;
	}
}

/* One reply line (without CRLF) into LINE; a line longer than the
 * buffer is an error. */
static void
read_line (Conn *c, char *line, size_t size)
{
	for (;;) {
		char *nl = memchr (c->buf + c->start, '\n', c->end - c->start);
		if (nl) {
			size_t len = (size_t) (nl - (c->buf + c->start));
			if (len > 0 && nl[-1] == '\r')
				len--;
			if (len >= size)
				die ("reply line too long");
			memcpy (line, c->buf + c->start, len);
			line[len] = '\0';
			c->start = (size_t) (nl - c->buf) + 1;
			return;
		}
		if (c->start > 0) {
			memmove (c->buf, c->buf + c->start, c->end - c->start);
			c->end -= c->start;
			c->start = 0;
		}
		if (c->end == sizeof c->buf)
			die ("reply line too long");
		ssize_t n = recv (c->fd, c->buf + c->end, sizeof c->buf - c->end, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die ("connection %s while waiting for a reply", n < 0 ? strerror (errno) : "closed");
		c->end += (size_t) n;
	}
}

/* A whole (possibly multi-line) reply; returns its code, LAST gets the
 * final line. */
static int
read_reply (Conn *c, char *last, size_t size)
{
	do
		read_line (c, last, size);
	while (strlen (last) > 3 && last[3] == '-');
	if (strlen (last) < 3)
		die ("malformed reply: %s", last);
	return atoi (last);
}

static void
expect (Conn *c, int want, const char *what)
{
	char line[1024];
	int code = read_reply (c, line, sizeof line);
	if (code != want)
		die ("%s: got \"%s\", wanted %d", what, line, want);
}

static void
open_session (Conn *c)
{
	c->fd = connect_to (address);
	c->start = c->end = 0;
	struct timeval tv = { REPLY_TIMEOUT_S, 0 };
	setsockopt (c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	expect (c, 220, "greeting");
	send_all (c, "LHLO bench.example\r\n", 20);
	expect (c, 250, "LHLO");
}

/* A MESSAGE_SIZE-byte message (final CRLF included, no dot line) that
 * no other message of any run shares. */
static size_t
make_message (char *buf, int session, unsigned n)
{
	static const char line[] = "When I open the checkout page the total is not computed and the "
	                           "order button stays disabled since yesterday's update.\r\n";
	int len = snprintf (buf, MESSAGE_SIZE,
	                    "From: Customer %d-%u <c%d-%u-%s@customer.example>\r\n"
	                    "To: support@support.example.com\r\n"
	                    "Subject: Checkout fails, case %s-%d-%u\r\n"
	                    "Message-ID: <bench-%s-%d-%u@customer.example>\r\n"
	                    "Date: Tue, 01 Dec 2026 10:00:00 +0200\r\n"
	                    "MIME-Version: 1.0\r\n"
	                    "Content-Type: text/plain; charset=utf-8\r\n\r\n",
	                    session, n, session, n, run_id, run_id, session, n, run_id, session, n);
	size_t used = (size_t) len;
	while (used + sizeof line - 1 <= MESSAGE_SIZE - 2) {
		memcpy (buf + used, line, sizeof line - 1);
		used += sizeof line - 1;
	}
	memset (buf + used, 'x', MESSAGE_SIZE - 2 - used);
	memcpy (buf + MESSAGE_SIZE - 2, "\r\n", 2);
	return MESSAGE_SIZE;
}

static void
run_session (int session, double seconds, int ready_fd, int go_fd, SessionResult *res)
{
	Conn c;
	char msg[MESSAGE_SIZE], cmd[512], line[1024];
	open_session (&c);
	if (write (ready_fd, "r", 1) != 1)
		die ("ready pipe: %s", strerror (errno));
	char byte;
	while (read (go_fd, &byte, 1) < 0 && errno == EINTR)
		;
	double deadline = now_s () + seconds;
	for (unsigned n = 0; now_s () < deadline && res->count + res->errors < MAX_SAMPLES; n++) {
		int len = snprintf (cmd, sizeof cmd,
		                    "MAIL FROM:<c%d-%u-%s@customer.example> SIZE=%d\r\n"
		                    "RCPT TO:<support@support.example.com>\r\nDATA\r\n",
		                    session, n, run_id, MESSAGE_SIZE);
		send_all (&c, cmd, (size_t) len);
		expect (&c, 250, "MAIL");
		expect (&c, 250, "RCPT");
		expect (&c, 354, "DATA");
		size_t size = make_message (msg, session, n);
		send_all (&c, msg, size);
		send_all (&c, ".\r\n", 3);
		double t0 = now_s ();
		int code = read_reply (&c, line, sizeof line);
		double t1 = now_s ();
		if (code == 250)
			res->latency_us[res->count++] = (uint32_t) ((t1 - t0) * 1e6);
		else if (res->errors++ == 0)
			fprintf (stderr, "bench/lmtp: session %d: %s\n", session, line);
	}
	send_all (&c, "QUIT\r\n", 6);
	close (c.fd);
}

/* utime+stime in seconds of a /proc/.../stat file, or -1; with COMM, only
 * if the task's name is COMM (or begins with it, when COMM ends in '-'). */
static double
stat_cpu_seconds (const char *path, const char *comm)
{
	char buf[1024];
	FILE *f = fopen (path, "r");
	if (!f)
		return -1;
	size_t n = fread (buf, 1, sizeof buf - 1, f);
	fclose (f);
	buf[n] = '\0';
	char *p = strrchr (buf, ')');  /* the command name may hold spaces */
	char *name = strchr (buf, '(');
	size_t len = comm ? strlen (comm) : 0;
	int prefix = len && comm[len - 1] == '-';
	if (comm && (!p || !name || (size_t) (p - name - 1) < len ||
	             (!prefix && (size_t) (p - name - 1) != len) || strncmp (name + 1, comm, len) != 0))
		return -1;
	unsigned long utime, stime;
	if (!p || sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
		return -1;
	return (double) (utime + stime) / (double) sysconf (_SC_CLK_TCK);
}

static double
cpu_seconds (long pid)
{
	char path[64];
	snprintf (path, sizeof path, "/proc/%ld/stat", pid);
	return stat_cpu_seconds (path, NULL);
}

/* CPU seconds of the server's threads named COMM (maildesk's writer
 * thread is "md-writer"): where the serial part of the work runs. */
static double
thread_cpu_seconds (long pid, const char *comm)
{
	char path[96];
	snprintf (path, sizeof path, "/proc/%ld/task", pid);
	DIR *d = opendir (path);
	double sum = 0;
	struct dirent *e;
	if (!d)
		return 0;
	while ((e = readdir (d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf (path, sizeof path, "/proc/%ld/task/%.20s/stat", pid, e->d_name);
		double s = stat_cpu_seconds (path, comm);
		if (s > 0)
			sum += s;
	}
	closedir (d);
	return sum;
}

/* CPU seconds of this process's waited-for children: the load client. */
static double
children_cpu_seconds (void)
{
	struct rusage ru;
	getrusage (RUSAGE_CHILDREN, &ru);
	return (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* A "VmHWM"/"VmRSS" line of /proc/PID/status in MB, or -1. */
static double
status_mb (long pid, const char *key)
{
	char path[64], line[256];
	snprintf (path, sizeof path, "/proc/%ld/status", pid);
	FILE *f = fopen (path, "r");
	double mb = -1;
	if (!f)
		return -1;
	while (fgets (line, sizeof line, f)) {
		size_t k = strlen (key);
		if (strncmp (line, key, k) == 0 && line[k] == ':') {
			mb = strtod (line + k + 1, NULL) / 1024.0;
			break;
		}
	}
	fclose (f);
	return mb;
}

static int
cmp_u32 (const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
	return x < y ? -1 : x > y;
}

static double
percentile_ms (const uint32_t *sorted, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t) (p * (double) (n - 1) + 0.5);
	return sorted[i] / 1000.0;
}

static int
run_load (int sessions, double seconds, long server_pid)
{
	int ready[2], go[2];
	size_t region = sizeof (SessionResult) * (size_t) sessions;
	SessionResult *results = mmap (NULL, region, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (results == MAP_FAILED)
		die ("mmap: %s", strerror (errno));
	if (pipe (ready) < 0 || pipe (go) < 0)
		die ("pipe: %s", strerror (errno));
	pid_t pids[MAX_SESSIONS];
	for (int i = 0; i < sessions; i++) {
		pids[i] = fork ();
		if (pids[i] < 0)
			die ("fork: %s", strerror (errno));
		if (pids[i] == 0) {
			close (ready[0]);
			close (go[1]);
			run_session (i, seconds, ready[1], go[0], &results[i]);
			_exit (0);
		}
	}
	close (ready[1]);
	close (go[0]);
	char byte;
	for (int i = 0; i < sessions; i++) {
		/* A session that dies before its LHLO never writes: don't wait forever. */
		struct pollfd pfd = { .fd = ready[0], .events = POLLIN };
		if (poll (&pfd, 1, REPLY_TIMEOUT_S * 1000) != 1 || read (ready[0], &byte, 1) != 1) {
			for (int j = 0; j < sessions; j++)
				kill (pids[j], SIGKILL);
			die ("a session failed to start");
		}
	}
	double cpu0 = server_pid ? cpu_seconds (server_pid) : 0;
	double writer0 = server_pid ? thread_cpu_seconds (server_pid, "md-writer") : 0;
	double pool0 = server_pid ? thread_cpu_seconds (server_pid, "pool-") : 0;
	double loop0 = server_pid ? thread_cpu_seconds (server_pid, "maildesk") : 0;
	double client0 = children_cpu_seconds ();
	double t0 = now_s ();
	close (go[1]);  /* every session starts now */
	int failed = 0, status;
	for (int i = 0; i < sessions; i++)
		if (waitpid (pids[i], &status, 0) < 0 || !WIFEXITED (status) || WEXITSTATUS (status) != 0)
			failed++;
	double wall = now_s () - t0;
	double cpu1 = server_pid ? cpu_seconds (server_pid) : 0;
	double writer1 = server_pid ? thread_cpu_seconds (server_pid, "md-writer") : 0;
	double pool1 = server_pid ? thread_cpu_seconds (server_pid, "pool-") : 0;
	double loop1 = server_pid ? thread_cpu_seconds (server_pid, "maildesk") : 0;
	double client_cpu = children_cpu_seconds () - client0;

	size_t total = 0, errors = 0;
	for (int i = 0; i < sessions; i++) {
		total += results[i].count;
		errors += results[i].errors;
	}
	uint32_t *all = malloc (sizeof *all * (total ? total : 1));
	size_t k = 0;
	for (int i = 0; i < sessions; i++) {
		memcpy (all + k, results[i].latency_us, sizeof *all * results[i].count);
		k += results[i].count;
	}
	qsort (all, total, sizeof *all, cmp_u32);
	printf ("sessions=%d seconds=%.2f messages=%zu errors=%zu failed_sessions=%d rate=%.1f p50_ms=%.2f p99_ms=%.2f",
	        sessions, wall, total, errors, failed, total / wall, percentile_ms (all, total, 0.50),
	        percentile_ms (all, total, 0.99));
	if (server_pid)
		printf (" server_cpu_s=%.2f server_cpu_pct=%.0f server_cpu_us_per_msg=%.0f server_hwm_mb=%.1f",
		        cpu1 - cpu0, 100 * (cpu1 - cpu0) / wall, total ? 1e6 * (cpu1 - cpu0) / total : 0,
		        status_mb (server_pid, "VmHWM"));
	/* maildesk's threads: the writer (the serial part), the pool that
	 * spools and parses (GLib names its threads "pool-" and the program's
	 * name, which was once the subcommand's),
	 * the main loop (LMTP sessions).  Threads that ended are not counted. */
	if (server_pid && writer1 > 0)
		printf (" writer_cpu_us_per_msg=%.0f pool_cpu_us_per_msg=%.0f loop_cpu_us_per_msg=%.0f",
		        total ? 1e6 * (writer1 - writer0) / total : 0, total ? 1e6 * (pool1 - pool0) / total : 0,
		        total ? 1e6 * (loop1 - loop0) / total : 0);
	printf (" client_cpu_us_per_msg=%.0f", total ? 1e6 * client_cpu / total : 0);
	printf ("\n");
	free (all);
	munmap (results, region);
	return failed || errors ? 1 : 0;
}

static int
run_idle (int n, long server_pid)
{
	Conn *conns = calloc ((size_t) n, sizeof *conns);
	if (!conns)
		die ("out of memory");
	for (int i = 0; i < n; i++)
		open_session (&conns[i]);
	sleep (1);  /* let the server settle with every session open */
	printf ("idle=%d", n);
	if (server_pid)
		printf (" server_rss_mb=%.1f server_hwm_mb=%.1f", status_mb (server_pid, "VmRSS"),
		        status_mb (server_pid, "VmHWM"));
	printf ("\n");
	for (int i = 0; i < n; i++) {
		send_all (&conns[i], "QUIT\r\n", 6);
		close (conns[i].fd);
	}
	free (conns);
	return 0;
}

int
main (int argc, char **argv)
{
	int sessions = 1, idle = 0, opt;
	double seconds = 5;
	long server_pid = 0;
	while ((opt = getopt (argc, argv, "s:t:p:i:")) != -1) {
		switch (opt) {
		case 's': sessions = atoi (optarg); break;
		case 't': seconds = atof (optarg); break;
		case 'p': server_pid = atol (optarg); break;
		case 'i': idle = atoi (optarg); break;
		default: return 2;
		}
	}
	if (optind != argc - 1 || sessions < 1 || sessions > MAX_SESSIONS || seconds <= 0 || seconds > MAX_SECONDS
	    || idle < 0 || idle > MAX_IDLE) {
		fprintf (stderr, "usage: bench/lmtp [-s SESSIONS (1-%d)] [-t SECONDS] [-p SERVER_PID] ADDRESS\n"
		                 "       bench/lmtp -i IDLE (1-%d) [-p SERVER_PID] ADDRESS\n", MAX_SESSIONS, MAX_IDLE);
		return 2;
	}
	address = argv[optind];
	struct timespec ts;
	clock_gettime (CLOCK_REALTIME, &ts);
	snprintf (run_id, sizeof run_id, "%lx%lx", (unsigned long) ts.tv_sec, (unsigned long) ts.tv_nsec ^ (unsigned long) getpid ());
	setvbuf (stdout, NULL, _IOLBF, 0);
	return idle ? run_idle (idle, server_pid) : run_load (sessions, seconds, server_pid);
}
