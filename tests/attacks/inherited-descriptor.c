// attack: write to a descriptor inherited from the caller (a connection to a forbidden address opened before the sandbox)
// inherit-fd: yes
// control: escapes
#include "support/attack.h"

int main(void)
{
	int fd = atoi(need_env("INHERITED_FD"));
	ssize_t n = write(fd, MARKER, sizeof(MARKER) - 1);
	attempt("write to the inherited descriptor", n > 0, errno);
	return verdict();
}
