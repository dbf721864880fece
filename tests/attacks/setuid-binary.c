// attack: execute a setuid-root program to regain privileges (and capabilities) the sandbox dropped
// setuid-helper: yes
// control: escapes
#include "support/attack.h"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--report") == 0) {
		// Running as the setuid copy: report the effective uid.
		int root = geteuid() == 0;
		attempt("effective uid 0 after exec of a setuid-root program", root, EPERM);
		return verdict();
	}
	const char *helper = need_env("SETUID_HELPER");
	execl(helper, helper, "--report", (char *)NULL);
	attempt("exec the setuid helper", 0, errno);
	return verdict();
}
