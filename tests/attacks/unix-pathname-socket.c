// attack: connect to a pathname unix socket the policy does not name (a local proxy or resolver forwards anywhere)
// control: escapes
#include "support/attack.h"
#include <sys/un.h>

int main(void)
{
	struct sockaddr_un addr = {0};
	addr.sun_family = AF_UNIX;
	strncpy(addr.sun_path, need_env("UNIX_SOCKET"), sizeof(addr.sun_path) - 1);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0) {
		attempt("socket(AF_UNIX)", 0, errno);
		return verdict();
	}
	int ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
	attempt("connect to the unix socket", ok, errno);
	return verdict();
}
