// attack: a routing header passed per datagram as a control message, which no socket-option hook sees
// control: none
// why-no-control: this kernel refuses routing headers in control messages unless it has Mobile IPv6 (CONFIG_IPV6_MIP6); the case guards the egress gate on kernels that have it
#include "support/attack.h"
#include <netinet/ip6.h>

struct srh {
	unsigned char nexthdr, hdrlen, type, segments_left;
	unsigned char last_entry, flags;
	unsigned short tag;
	struct in6_addr segments[2];
};

struct rthdr2 {
	unsigned char nexthdr, hdrlen, type, segments_left;
	unsigned int reserved;
	struct in6_addr addr;
};

static void send_with(const void *header, size_t size, const char *label)
{
	struct sockaddr_storage allowed;
	socklen_t len = parse_addr(need_env("ALLOWED6_UDP"), &allowed);
	int fd = socket(AF_INET6, SOCK_DGRAM, 0);
	char control[CMSG_SPACE(64)];
	memset(control, 0, sizeof(control));
	struct iovec iov = {.iov_base = (void *)MARKER, .iov_len = sizeof(MARKER) - 1};
	struct msghdr msg = {0};
	msg.msg_name = &allowed;
	msg.msg_namelen = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control;
	msg.msg_controllen = CMSG_SPACE(size);
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = IPPROTO_IPV6;
	cmsg->cmsg_type = IPV6_RTHDR;
	cmsg->cmsg_len = CMSG_LEN(size);
	memcpy(CMSG_DATA(cmsg), header, size);
	ssize_t n = sendmsg(fd, &msg, 0);
	attempt(label, n >= 0, errno);
	close(fd);
}

int main(void)
{
	struct sockaddr_storage allowed, forbidden;
	parse_addr(need_env("ALLOWED6_UDP"), &allowed);
	parse_addr(need_env("FORBIDDEN6_UDP"), &forbidden);
	struct rthdr2 rt2 = {0};
	rt2.hdrlen = 2;
	rt2.type = 2;
	rt2.segments_left = 1;
	rt2.addr = ((struct sockaddr_in6 *)&forbidden)->sin6_addr;
	send_with(&rt2, sizeof(rt2), "UDP with a type-2 routing header in a control message");
	struct srh rt4 = {0};
	rt4.hdrlen = 4;
	rt4.type = 4;
	rt4.segments_left = 1;
	rt4.last_entry = 1;
	rt4.segments[0] = ((struct sockaddr_in6 *)&allowed)->sin6_addr;
	rt4.segments[1] = ((struct sockaddr_in6 *)&forbidden)->sin6_addr;
	send_with(&rt4, sizeof(rt4), "UDP with a segment-routing header in a control message");
	return verdict();
}
