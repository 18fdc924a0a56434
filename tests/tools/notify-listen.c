/*
 * notify-listen: the receiving end of the sd_notify protocol, for tests that
 * run the agent without systemd.
 *
 *   notify-listen [-r] SOCKET
 *
 * Binds a Unix datagram socket at SOCKET (the path the test puts in
 * NOTIFY_SOCKET) and prints every line of every message it receives as
 * "MILLISECONDS LINE", the time counted from its start (with -r: Unix time
 * in milliseconds, to compare with `date +%s%3N`), flushing each one.
 * It stops on SIGTERM or SIGINT and removes the socket.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int clock_id = CLOCK_MONOTONIC;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(clock_id, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void print_message(char *msg, long long ms)
{
	char *save = NULL;

	for (char *line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		printf("%lld %s\n", ms, line);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct sockaddr_un addr;
	struct sigaction sa;
	static char buf[65536];
	long long start;
	int fd;

	if (argc == 3 && strcmp(argv[1], "-r") == 0) {
		clock_id = CLOCK_REALTIME;
		argv++;
		argc--;
	}
	if (argc != 2 || strlen(argv[1]) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "usage: notify-listen [-r] SOCKET (a path shorter than %zu bytes)\n",
			sizeof(addr.sun_path));
		return 64;
	}
	start = clock_id == CLOCK_REALTIME ? 0 : now_ms();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		fprintf(stderr, "notify-listen: socket: %s\n", strerror(errno));
		return 1;
	}
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	strcpy(addr.sun_path, argv[1]);
	unlink(argv[1]);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == -1) {
		fprintf(stderr, "notify-listen: bind %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	while (!stop) {
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "notify-listen: recv: %s\n", strerror(errno));
			break;
		}
		buf[n] = '\0';
		print_message(buf, now_ms() - start);
	}
	close(fd);
	unlink(argv[1]);
	return 0;
}
