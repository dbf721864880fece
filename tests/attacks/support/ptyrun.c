// Runs a command with a new pseudo-terminal as its controlling terminal (as an operator's
// interactive shell would give it), then reports whether anything was pushed into that
// terminal's input queue while it ran: a line `injected N` (N bytes a shell would have
// read and run after the command exited). Exits with the command's exit code.
//
// Usage: ptyrun CMD ARGS...
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0)
		return 2;
	char *name = ptsname(master);
	pid_t pid = fork();
	if (pid == 0) {
		setsid();
		int slave = open(name, O_RDWR);
		if (slave < 0)
			_exit(2);
		ioctl(slave, TIOCSCTTY, 0);
		dup2(slave, 0);
		dup2(slave, 1);
		dup2(slave, 2);
		if (slave > 2)
			close(slave);
		close(master);
		execvp(argv[1], argv + 1);
		_exit(127);
	}
	// Keep a slave descriptor in raw mode so injected bytes are readable at once, and
	// copy the command's output to our stdout.
	int slave = open(name, O_RDWR | O_NOCTTY | O_NONBLOCK);
	struct termios raw;
	if (tcgetattr(slave, &raw) == 0) {
		cfmakeraw(&raw);
		tcsetattr(slave, TCSANOW, &raw);
	}
	int status = 0;
	char buf[4096];
	for (;;) {
		struct pollfd p = {.fd = master, .events = POLLIN};
		if (poll(&p, 1, 50) > 0) {
			ssize_t n = read(master, buf, sizeof(buf));
			if (n > 0)
				fwrite(buf, 1, n, stdout);
		}
		pid_t done = waitpid(pid, &status, WNOHANG);
		if (done == pid)
			break;
	}
	for (;;) {
		struct pollfd p = {.fd = master, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0)
			break;
		ssize_t n = read(master, buf, sizeof(buf));
		if (n <= 0)
			break;
		fwrite(buf, 1, n, stdout);
	}
	ssize_t injected = read(slave, buf, sizeof(buf));
	printf("\ninjected %zd\n", injected > 0 ? injected : 0);
	fflush(stdout);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 3;
}
