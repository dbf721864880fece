// attack: move itself out of its cgroup (and out of the eBPF program's reach), then connect to a forbidden address
// control: none
// why-no-control: unconfined there is no cgroup to leave
// variant: as-root: --allow-root
// denial: connect4 no-rule-for-address
#include "support/attack.h"
#include <fcntl.h>

int main(void)
{
	const char *paths[] = {"/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/unified/cgroup.procs",
			       "/sys/fs/cgroup/egc/cgroup.procs", "/sys/fs/cgroup/unified/egc/cgroup.procs"};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		int fd = open(paths[i], O_WRONLY);
		int ok = fd >= 0 && write(fd, "0", 1) == 1;
		attempt(paths[i], ok, errno);
		if (fd >= 0)
			close(fd);
	}
	int err = 0;
	{ int ok_ = tcp_send(need_env("FORBIDDEN_TCP"), &err); attempt("TCP to the forbidden address afterwards", ok_, err); }
	return verdict();
}
