// attack: ptrace-attach to another process of the same user and drive it
// victim: yes
// control: escapes
#include "support/attack.h"
#include <sys/ptrace.h>
#include <sys/wait.h>

int main(void)
{
	pid_t pid = atoi(need_env("VICTIM_PID"));
	if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) {
		attempt("PTRACE_SEIZE", 0, errno);
		return verdict();
	}
	attempt("PTRACE_SEIZE", 1, 0);
	ptrace(PTRACE_DETACH, pid, 0, 0);
	return verdict();
}
