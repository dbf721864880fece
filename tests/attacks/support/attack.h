// Shared helpers for the attack probes in tests/attacks/.
//
// A probe is a small program a compromised agent could run. It tries one way out and
// exits with ESCAPED (10) when the attempt succeeded, BLOCKED (0) when every attempt
// failed, and 2 when the test environment is broken. The harness
// (crates/egc/tests/attacks.rs) also watches the network independently: a packet
// capture in the test's network namespace records every packet sent to a forbidden
// address, so a probe that lies about its result is still caught.
//
// Addresses come from the environment the harness sets:
//   ALLOWED_TCP, FORBIDDEN_TCP, ALLOWED_UDP, FORBIDDEN_UDP      (IPv4, "a.b.c.d:port")
//   ALLOWED6_TCP, FORBIDDEN6_TCP, ALLOWED6_UDP, FORBIDDEN6_UDP  ("[v6]:port")
//   UNIX_SOCKET (a pathname listener), ABSTRACT_SOCKET (an abstract name, no '@')
//   VICTIM_PID (a process of the same user, outside the sandbox), INHERITED_FD
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ESCAPED 10
#define BLOCKED 0

static int attempts_escaped = 0;

__attribute__((unused)) static const char *need_env(const char *name)
{
	const char *value = getenv(name);
	if (!value || !*value) {
		fprintf(stderr, "environment variable %s is not set\n", name);
		exit(2);
	}
	return value;
}

// Reports one attempt: `ok` true when it got through.
static void attempt(const char *what, int ok, int err)
{
	if (ok) {
		printf("ESCAPED %s\n", what);
		attempts_escaped++;
	} else {
		printf("blocked %s: %s\n", what, strerror(err));
	}
	fflush(stdout);
}

static int verdict(void)
{
	return attempts_escaped ? ESCAPED : BLOCKED;
}

// Parses "a.b.c.d:port" or "[v6]:port" into `out`; returns its length.
static socklen_t parse_addr(const char *text, struct sockaddr_storage *out)
{
	char host[128];
	const char *colon = strrchr(text, ':');
	if (!colon || (size_t)(colon - text) >= sizeof(host)) {
		fprintf(stderr, "bad address %s\n", text);
		exit(2);
	}
	memcpy(host, text, colon - text);
	host[colon - text] = 0;
	int port = atoi(colon + 1);
	memset(out, 0, sizeof(*out));
	if (host[0] == '[') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
		size_t n = strlen(host);
		if (n < 2 || host[n - 1] != ']') {
			fprintf(stderr, "bad address %s\n", text);
			exit(2);
		}
		host[n - 1] = 0;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1) {
			fprintf(stderr, "bad address %s\n", text);
			exit(2);
		}
		return sizeof(*a6);
	}
	struct sockaddr_in *a4 = (struct sockaddr_in *)out;
	a4->sin_family = AF_INET;
	a4->sin_port = htons(port);
	if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", text);
		exit(2);
	}
	return sizeof(*a4);
}

static const char MARKER[] = "EGC-ATTACK-PAYLOAD secret=4242";

// A TCP connect to `text`, sending the marker. Returns 1 when connected.
__attribute__((unused)) static int tcp_send(const char *text, int *err)
{
	struct sockaddr_storage addr;
	socklen_t len = parse_addr(text, &addr);
	int fd = socket(addr.ss_family, SOCK_STREAM, 0);
	if (fd < 0) {
		*err = errno;
		return 0;
	}
	if (connect(fd, (struct sockaddr *)&addr, len) != 0) {
		*err = errno;
		close(fd);
		return 0;
	}
	send(fd, MARKER, sizeof(MARKER) - 1, MSG_NOSIGNAL);
	close(fd);
	return 1;
}

// An unconnected UDP datagram to `text`. Returns 1 when sent.
__attribute__((unused)) static int udp_send(const char *text, int *err)
{
	struct sockaddr_storage addr;
	socklen_t len = parse_addr(text, &addr);
	int fd = socket(addr.ss_family, SOCK_DGRAM, 0);
	if (fd < 0) {
		*err = errno;
		return 0;
	}
	ssize_t n = sendto(fd, MARKER, sizeof(MARKER) - 1, 0, (struct sockaddr *)&addr, len);
	*err = errno;
	close(fd);
	return n >= 0;
}
