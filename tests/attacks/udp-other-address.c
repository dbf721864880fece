// attack: unconnected UDP datagrams and a connected UDP socket to a forbidden address
// modes: run, enforce
// control: escapes
// denial: sendmsg4 no-rule-for-address
#include "support/attack.h"

int main(void)
{
	int err = 0;
	{ int ok_ = udp_send(need_env("FORBIDDEN_UDP"), &err); attempt("UDP sendto the forbidden address", ok_, err); }
	struct sockaddr_storage addr;
	socklen_t len = parse_addr(need_env("FORBIDDEN_UDP"), &addr);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int ok = connect(fd, (struct sockaddr *)&addr, len) == 0 &&
		 send(fd, MARKER, sizeof(MARKER) - 1, 0) >= 0;
	attempt("connected UDP to the forbidden address", ok, errno);
	return verdict();
}
