// The attack suite's witness: run as root inside the test's network namespace.
//
// It captures every packet on the loopback interface (AF_PACKET) and prints one line per
// packet: `packet FAMILY DST PROTO DPORT`, listens on the TCP and UDP addresses the probes
// aim at (so connections complete), and on a pathname and an abstract unix socket
// (printing `unix-accept` / `abstract-accept`), and prints `data HOST PORT BYTES` for
// every read on an accepted connection. The harness reads these lines after a
// probe ran and fails the case when anything reached a forbidden address.
//
// Usage: sink UNIX_PATH ABSTRACT_NAME TCP_OR_UDP_ADDR...   (e.g. tcp:127.0.0.9:8080)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 64

static socklen_t parse(const char *text, struct sockaddr_storage *out)
{
	char host[128];
	const char *colon = strrchr(text, ':');
	if (!colon || (size_t)(colon - text) >= sizeof(host))
		exit(2);
	memcpy(host, text, colon - text);
	host[colon - text] = 0;
	memset(out, 0, sizeof(*out));
	if (host[0] == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
		host[strlen(host) - 1] = 0;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(atoi(colon + 1));
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			exit(2);
		return sizeof(*a);
	}
	struct sockaddr_in *a = (struct sockaddr_in *)out;
	a->sin_family = AF_INET;
	a->sin_port = htons(atoi(colon + 1));
	if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		exit(2);
	return sizeof(*a);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct pollfd fds[MAX_FDS];
	int kinds[MAX_FDS]; // 0 packet, 1 tcp listener, 2 udp, 3 unix listener, 4 abstract, 5 stream
	int n = 0;

	int packet = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL));
	if (packet < 0) {
		perror("packet socket");
		return 2;
	}
	struct sockaddr_ll ll = {0};
	ll.sll_family = AF_PACKET;
	ll.sll_protocol = htons(ETH_P_ALL);
	ll.sll_ifindex = if_nametoindex("lo");
	if (bind(packet, (struct sockaddr *)&ll, sizeof(ll)) != 0) {
		perror("bind packet");
		return 2;
	}
	fds[n].fd = packet;
	kinds[n++] = 0;

	struct sockaddr_un un = {0};
	un.sun_family = AF_UNIX;
	strncpy(un.sun_path, argv[1], sizeof(un.sun_path) - 1);
	unlink(argv[1]);
	int unix_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(unix_fd, (struct sockaddr *)&un, sizeof(un)) != 0 || listen(unix_fd, 16) != 0) {
		perror("unix listener");
		return 2;
	}
	chmod(argv[1], 0777);
	fds[n].fd = unix_fd;
	kinds[n++] = 3;

	struct sockaddr_un abs = {0};
	abs.sun_family = AF_UNIX;
	size_t name_len = strlen(argv[2]);
	if (name_len + 1 > sizeof(abs.sun_path))
		return 2;
	memcpy(abs.sun_path + 1, argv[2], name_len);
	int abs_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	socklen_t abs_len = offsetof(struct sockaddr_un, sun_path) + 1 + name_len;
	if (bind(abs_fd, (struct sockaddr *)&abs, abs_len) != 0 || listen(abs_fd, 16) != 0) {
		perror("abstract listener");
		return 2;
	}
	fds[n].fd = abs_fd;
	kinds[n++] = 4;

	for (int i = 3; i < argc && n < MAX_FDS; i++) {
		int udp = strncmp(argv[i], "udp:", 4) == 0;
		struct sockaddr_storage addr;
		socklen_t len = parse(argv[i] + 4, &addr);
		int fd = socket(addr.ss_family, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (addr.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&addr, len) != 0) {
			fprintf(stderr, "bind %s: %s\n", argv[i], strerror(errno));
			return 2;
		}
		if (!udp)
			listen(fd, 64);
		fds[n].fd = fd;
		kinds[n++] = udp ? 2 : 1;
	}
	for (int i = 0; i < n; i++)
		fds[i].events = POLLIN;
	printf("ready\n");

	unsigned char buf[65536];
	for (;;) {
		if (poll(fds, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 2;
		}
		for (int i = 0; i < n; i++) {
			if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			fds[i].revents = 0;
			if (kinds[i] == 0) {
				struct sockaddr_ll from;
				socklen_t from_len = sizeof(from);
				ssize_t got = recvfrom(packet, buf, sizeof(buf), 0,
						       (struct sockaddr *)&from, &from_len);
				if (got <= 0)
					continue;
				char dst[INET6_ADDRSTRLEN] = "?";
				int proto = -1, dport = 0;
				if (ntohs(from.sll_protocol) == ETH_P_IP && got >= 20) {
					int ihl = (buf[0] & 0x0f) * 4;
					inet_ntop(AF_INET, buf + 16, dst, sizeof(dst));
					proto = buf[9];
					if ((proto == 6 || proto == 17) && got >= ihl + 4)
						dport = (buf[ihl + 2] << 8) | buf[ihl + 3];
					printf("packet ipv4 %s %d %d options=%d\n", dst, proto, dport,
					       ihl > 20);
				} else if (ntohs(from.sll_protocol) == ETH_P_IPV6 && got >= 40) {
					inet_ntop(AF_INET6, buf + 24, dst, sizeof(dst));
					proto = buf[6];
					if ((proto == 6 || proto == 17) && got >= 44)
						dport = (buf[42] << 8) | buf[43];
					printf("packet ipv6 %s %d %d\n", dst, proto, dport);
				}
			} else if (kinds[i] == 1 || kinds[i] == 3 || kinds[i] == 4) {
				int c = accept(fds[i].fd, NULL, NULL);
				if (c < 0)
					continue;
				if (kinds[i] == 3)
					printf("unix-accept\n");
				if (kinds[i] == 4)
					printf("abstract-accept\n");
				if (n < MAX_FDS) {
					fds[n].fd = c;
					fds[n].events = POLLIN;
					fds[n].revents = 0;
					kinds[n++] = 5;
				} else {
					close(c);
				}
			} else if (kinds[i] == 2) {
				recv(fds[i].fd, buf, sizeof(buf), 0);
			} else {
				ssize_t got = recv(fds[i].fd, buf, sizeof(buf), 0);
				if (got > 0) {
					struct sockaddr_storage local;
					socklen_t local_len = sizeof(local);
					char host[INET6_ADDRSTRLEN] = "unix";
					int port = 0;
					if (getsockname(fds[i].fd, (struct sockaddr *)&local, &local_len) == 0) {
						if (local.ss_family == AF_INET) {
							struct sockaddr_in *a = (struct sockaddr_in *)&local;
							inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
							port = ntohs(a->sin_port);
						} else if (local.ss_family == AF_INET6) {
							struct sockaddr_in6 *a = (struct sockaddr_in6 *)&local;
							inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
							port = ntohs(a->sin6_port);
						}
					}
					printf("data %s %d %zd\n", host, port, got);
				}
				if (got <= 0) {
					close(fds[i].fd);
					fds[i] = fds[n - 1];
					kinds[i] = kinds[n - 1];
					n--;
					i--;
				}
			}
		}
	}
}
