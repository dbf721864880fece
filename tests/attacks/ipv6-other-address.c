// attack: TCP and UDP to a forbidden IPv6 address on the allowed ports
// modes: run, enforce
// control: escapes
// denial: connect6 no-rule-for-address
#include "support/attack.h"

int main(void)
{
	int err = 0;
	{ int ok_ = tcp_send(need_env("FORBIDDEN6_TCP"), &err); attempt("TCP to the forbidden IPv6 address", ok_, err); }
	{ int ok_ = udp_send(need_env("FORBIDDEN6_UDP"), &err); attempt("UDP to the forbidden IPv6 address", ok_, err); }
	return verdict();
}
