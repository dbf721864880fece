// attack: connect to an abstract unix socket outside the sandbox
// control: escapes
#include "support/attack.h"
#include <stddef.h>
#include <sys/un.h>

int main(void)
{
	const char *name = need_env("ABSTRACT_SOCKET");
	struct sockaddr_un addr = {0};
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path + 1, name, strlen(name));
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0) {
		attempt("socket(AF_UNIX)", 0, errno);
		return verdict();
	}
	int ok = connect(fd, (struct sockaddr *)&addr, len) == 0;
	attempt("connect to the abstract socket", ok, errno);
	return verdict();
}
