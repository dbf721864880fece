// attack: IPv4 options (a source route) passed per datagram as an IP_RETOPTS control message, which no socket-option hook sees; the egress gate must drop the packet
// control: escapes
// policy: net-raw
// control-as: root
// denial: egress packet-with-ip-options-or-routing-header
#include "support/attack.h"

int main(void)
{
	struct sockaddr_storage allowed, forbidden;
	socklen_t len = parse_addr(need_env("ALLOWED_UDP"), &allowed);
	parse_addr(need_env("FORBIDDEN_UDP"), &forbidden);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	unsigned char options[8] = {131, 7, 4, 0, 0, 0, 0, 0};
	memcpy(options + 3, &((struct sockaddr_in *)&forbidden)->sin_addr, 4);
	char control[CMSG_SPACE(sizeof(options))];
	memset(control, 0, sizeof(control));
	struct iovec iov = {.iov_base = (void *)MARKER, .iov_len = sizeof(MARKER) - 1};
	struct msghdr msg = {0};
	msg.msg_name = &allowed;
	msg.msg_namelen = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control;
	msg.msg_controllen = sizeof(control);
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = IPPROTO_IP;
	cmsg->cmsg_type = IP_RETOPTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(options));
	memcpy(CMSG_DATA(cmsg), options, sizeof(options));
	ssize_t n = sendmsg(fd, &msg, 0);
	attempt("UDP datagram with IPv4 options in a control message", n >= 0, errno);
	return verdict();
}
