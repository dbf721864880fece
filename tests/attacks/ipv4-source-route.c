// attack: IP_OPTIONS with a loose source route through a forbidden address (the kernel lets only CAP_NET_RAW holders set it; the hook refuses it for everyone)
// control: escapes
// control-as: root
// denial: setsockopt routing-socket-option
#include "support/attack.h"

static void try_type(int type, const char *env_name, const char *label)
{
	struct sockaddr_storage allowed, forbidden;
	socklen_t len = parse_addr(need_env(env_name), &allowed);
	parse_addr(need_env("FORBIDDEN_UDP"), &forbidden);
	int fd = socket(AF_INET, type, 0);
	// LSRR: type 131, length 7, pointer 4, one hop address; padded with a NOP-free
	// end-of-list to a multiple of four bytes.
	unsigned char options[8] = {131, 7, 4, 0, 0, 0, 0, 0};
	memcpy(options + 3, &((struct sockaddr_in *)&forbidden)->sin_addr, 4);
	if (setsockopt(fd, IPPROTO_IP, IP_OPTIONS, options, sizeof(options)) != 0) {
		attempt(label, 0, errno);
		close(fd);
		return;
	}
	int ok = sendto(fd, MARKER, sizeof(MARKER) - 1, 0, (struct sockaddr *)&allowed, len) >= 0;
	attempt(label, ok, errno);
	close(fd);
}

int main(void)
{
	try_type(SOCK_DGRAM, "ALLOWED_UDP", "UDP datagram with a source route");
	return verdict();
}
