// attack: io_uring submits network operations without the syscalls seccomp filters
// control: none
// why-no-control: io_uring itself is not a way out (its connect passes the cgroup hooks); refusing it keeps the seccomp allowlist meaningful
#include "support/attack.h"
#include <linux/io_uring.h>
#include <sys/syscall.h>

int main(void)
{
	struct io_uring_params params = {0};
	long fd = syscall(__NR_io_uring_setup, 4, &params);
	attempt("io_uring_setup", fd >= 0, errno);
	return verdict();
}
