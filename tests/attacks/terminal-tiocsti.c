// attack: push a command into the caller's terminal with TIOCSTI; the caller's shell runs it, unconfined, after egc run exits
// terminal: yes
// control: escapes
#include "support/attack.h"
#include <fcntl.h>
#include <sys/ioctl.h>

int main(void)
{
	const char *command = "id\n";
	int fds[4] = {0, 1, 2, -1};
	fds[3] = open("/dev/tty", O_RDWR);
	for (int i = 0; i < 4; i++) {
		if (fds[i] < 0) {
			attempt("open /dev/tty", 0, errno);
			continue;
		}
		int ok = 1, err = 0;
		for (const char *c = command; *c; c++) {
			if (ioctl(fds[i], TIOCSTI, c) != 0) {
				ok = 0;
				err = errno;
				break;
			}
		}
		char what[64];
		snprintf(what, sizeof(what), "TIOCSTI on descriptor %d", fds[i]);
		attempt(what, ok, err);
	}
	// The same request with high bits set: the kernel reads an unsigned int.
	unsigned long sneaky = 0x100000000UL | TIOCSTI;
	int ok = ioctl(0, sneaky, "x") == 0;
	attempt("TIOCSTI with high bits set", ok, errno);
	return verdict();
}
