// attack: TCP Fast Open (sendto with MSG_FASTOPEN) carries data in the SYN to a forbidden address
// modes: run, enforce
// control: escapes
// denial: connect4 no-rule-for-address
#include "support/attack.h"
#include <netinet/tcp.h>

int main(void)
{
	struct sockaddr_storage addr;
	socklen_t len = parse_addr(need_env("FORBIDDEN_TCP"), &addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ssize_t n = sendto(fd, MARKER, sizeof(MARKER) - 1, MSG_FASTOPEN, (struct sockaddr *)&addr, len);
	attempt("sendto MSG_FASTOPEN", n >= 0, errno);
	return verdict();
}
