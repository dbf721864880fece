// attack: sockets that never pass the connect hooks: raw, packet, SCTP, MPTCP, UDP-Lite, vsock, AF_ALG, AF_XDP, netlink (other than route)
// modes: run, enforce
// control: none
// denial: enforce sock_create socket-not-tcp-or-udp
// why-no-control: most of these need CAP_NET_RAW or kernel modules even unconfined; a socket that opens is counted as a way out
#include "support/attack.h"
#include <linux/netlink.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef AF_XDP
#define AF_XDP 44
#endif

struct kind {
	const char *what;
	int family, type, protocol;
	int run_only; // outside egc run (no seccomp) other layers answer
};

int main(void)
{
	struct kind kinds[] = {
		{"raw IPv4", AF_INET, SOCK_RAW, IPPROTO_UDP, 0},
		{"raw IPv6", AF_INET6, SOCK_RAW, IPPROTO_UDP, 0},
		{"packet", AF_PACKET, SOCK_RAW, 0, 0},
		{"SCTP", AF_INET, SOCK_STREAM, IPPROTO_SCTP, 0},
		{"MPTCP", AF_INET, SOCK_STREAM, IPPROTO_MPTCP, 0},
		{"MPTCP IPv6", AF_INET6, SOCK_STREAM, IPPROTO_MPTCP, 0},
		{"UDP-Lite", AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE, 0},
		{"SOCK_SEQPACKET SCTP", AF_INET6, SOCK_SEQPACKET, IPPROTO_SCTP, 0},
		{"vsock", AF_VSOCK, SOCK_STREAM, 0, 1},
		{"AF_ALG", AF_ALG, SOCK_SEQPACKET, 0, 1},
		{"AF_XDP", AF_XDP, SOCK_RAW, 0, 0},
		{"netlink generic", AF_NETLINK, SOCK_RAW, NETLINK_GENERIC, 1},
	};
	const char *mode = getenv("EGC_ATTACK_MODE");
	int enforce = mode && strcmp(mode, "enforce") == 0;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (enforce && kinds[i].run_only)
			continue;
		int fd = socket(kinds[i].family, kinds[i].type, kinds[i].protocol);
		attempt(kinds[i].what, fd >= 0, errno);
		if (fd >= 0)
			close(fd);
	}
	return verdict();
}
