// attack: signal a process of the same user outside the sandbox (Landlock ABI 6 scopes signals)
// victim: yes
// control: escapes
#include "support/attack.h"
#include <signal.h>

int main(void)
{
	pid_t pid = atoi(need_env("VICTIM_PID"));
	// Signal 0 checks permission without disturbing the victim.
	int ok = kill(pid, 0) == 0;
	attempt("kill(victim, 0)", ok, errno);
	return verdict();
}
