// attack: with one unix socket named and passed in by egc run, open another connection to that path or to an abstract socket itself
// policy: unix
// unix-socket: /run/egc-attack-tests/named.sock
// allowed-unix-accepts: 1
// control: escapes
#include "support/attack.h"
#include <stddef.h>
#include <sys/un.h>

int main(void)
{
	const char *passed = getenv("EGC_UNIX_SOCKETS");
	if (passed) {
		// "PATH:FD,...": the descriptor egc connected for the named path must work.
		const char *colon = strrchr(passed, ':');
		if (!colon) {
			fprintf(stderr, "EGC_UNIX_SOCKETS malformed: %s\n", passed);
			return 2;
		}
		int fd = atoi(colon + 1);
		if (write(fd, "hello", 5) != 5) {
			fprintf(stderr, "the passed socket does not work: %s\n", strerror(errno));
			return 2;
		}
		printf("the passed-in socket works (descriptor %d)\n", fd);
	}
	struct sockaddr_un addr = {0};
	addr.sun_family = AF_UNIX;
	strncpy(addr.sun_path, need_env("UNIX_SOCKET"), sizeof(addr.sun_path) - 1);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	int ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
	attempt("a second connection to the named socket", ok, errno);
	return verdict();
}
