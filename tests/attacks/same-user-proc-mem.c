// attack: write into another process of the same user through /proc/PID/mem (code injection outside the sandbox)
// victim: yes
// control: escapes
// variant: landlock-abi-1: --landlock-abi 1
// variant: dynamic-user-without-landlock: --dynamic-user --no-landlock
#include "support/attack.h"
#include <fcntl.h>

int main(void)
{
	const char *pid = need_env("VICTIM_PID");
	char path[64];
	snprintf(path, sizeof(path), "/proc/%s/mem", pid);
	int fd = open(path, O_RDWR);
	if (fd < 0) {
		attempt("open /proc/PID/mem for writing", 0, errno);
		return verdict();
	}
	// Opening it for writing is the whole primitive; a write to an unmapped address
	// fails harmlessly, so the open alone counts.
	attempt("open /proc/PID/mem for writing", 1, 0);
	return verdict();
}
