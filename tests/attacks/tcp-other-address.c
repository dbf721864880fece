// attack: TCP to a forbidden address on the allowed port
// modes: run, enforce
// control: escapes
// denial: connect4 no-rule-for-address
#include "support/attack.h"

int main(void)
{
	int err = 0;
	{ int ok_ = tcp_send(need_env("FORBIDDEN_TCP"), &err); attempt("TCP to the forbidden address", ok_, err); }
	return verdict();
}
