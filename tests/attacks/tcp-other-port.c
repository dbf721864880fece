// attack: TCP to the allowed address on another port
// modes: run, enforce
// control: escapes
// denial: enforce connect4 port-or-protocol-not-allowed
#include "support/attack.h"

int main(void)
{
	int err = 0;
	char target[64];
	snprintf(target, sizeof(target), "127.0.0.8:9090");
	{ int ok_ = tcp_send(target, &err); attempt("TCP to 127.0.0.8:9090", ok_, err); }
	return verdict();
}
