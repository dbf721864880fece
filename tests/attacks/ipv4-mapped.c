// attack: an IPv6 socket connecting to the IPv4-mapped form of a forbidden IPv4 address
// modes: run, enforce
// control: escapes
// denial: connect6 no-rule-for-address
#include "support/attack.h"

int main(void)
{
	int err = 0;
	{ int ok_ = tcp_send("[::ffff:127.0.0.9]:8080", &err); attempt("TCP [::ffff:127.0.0.9]:8080", ok_, err); }
	{ int ok_ = udp_send("[::ffff:127.0.0.9]:5353", &err); attempt("UDP [::ffff:127.0.0.9]:5353", ok_, err); }
	return verdict();
}
