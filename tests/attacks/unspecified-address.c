// attack: connect to the unspecified address (0.0.0.0, ::, ::ffff:0.0.0.0), which reaches local listeners, under a policy that allows 0.0.0.0/8
// policy: unspecified
// control: escapes
// denial: connect4 unspecified-address
#include "support/attack.h"

int main(void)
{
	int err = 0;
	{ int ok_ = tcp_send("0.0.0.0:9090", &err); attempt("TCP 0.0.0.0:9090", ok_, err); }
	{ int ok_ = tcp_send("0.1.2.3:9090", &err); attempt("TCP 0.1.2.3:9090", ok_, err); }
	{ int ok_ = tcp_send("[::]:9090", &err); attempt("TCP [::]:9090", ok_, err); }
	{ int ok_ = tcp_send("[::ffff:0.0.0.0]:9090", &err); attempt("TCP [::ffff:0.0.0.0]:9090", ok_, err); }
	{ int ok_ = udp_send("0.0.0.0:9090", &err); attempt("UDP 0.0.0.0:9090", ok_, err); }
	return verdict();
}
