// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
//
// egc socket-level egress enforcement for one agent.
//
// Attached to a cgroup v2 at the connect4, connect6, sendmsg4 and sendmsg6 hooks.
// A connection (or an unconnected UDP datagram) is allowed only when the destination
// address has an entry in the `rules` LPM trie and that entry lists the destination's
// protocol and port. Every other attempt fails with EPERM, is counted in the per-CPU
// `counters` array and is reported on the `events` ring buffer.
//
// The map layout is documented in book/src/runtime/maps.md and mirrored byte for byte
// by crates/egress-enforce/src/layout.rs. Keep the three in step.
//
// Addresses: one trie serves both families. IPv4 addresses are stored IPv4-mapped
// (::ffff:a.b.c.d, prefix length 96 + n), so an IPv6 socket that connects to an
// IPv4-mapped address is judged exactly like an IPv4 socket connecting to the address.
//
// Push-down: the trie returns only the longest matching prefix, so user space stores
// in every entry the rules of every covering entry as well. A more specific entry
// therefore never hides a broader allow.

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_RULES 32
#define MAX_EXCEPTION_SLOTS 256
#define RULES_MAX_ENTRIES 131072

// Counter indices (per-CPU array).
#define CNT_ALLOWED 0
#define CNT_DENIED 1
#define CNT_DENIED_NO_PREFIX 2
#define CNT_DENIED_PORT 3
#define CNT_DENIED_PROTOCOL 4
#define CNT_DENIED_EXC_EXPIRED 5
#define CNT_DENIED_EXC_EXHAUSTED 6
#define CNT_EVENTS_DROPPED 7
#define CNT_ALLOWED_VIA_EXCEPTION 8
#define CNT_DENIED_SOCKET 9
#define CNT_DENIED_SOCKOPT 10
#define CNT_DROPPED_PACKETS 11
#define CNT_DENIED_UNSPECIFIED 12
#define CNT_DNS_REDIRECTED 13
#define CNT_GATE_REDIRECTED 14
#define CNT_AUDITED 15
#define CNT_MAX 16

// Denial reasons.
#define REASON_NO_PREFIX 1
#define REASON_PORT 2
#define REASON_PROTOCOL 3
#define REASON_EXC_EXPIRED 4
#define REASON_EXC_EXHAUSTED 5
#define REASON_SOCKET_KIND 6      // an inet socket other than TCP or UDP (ping, raw, SCTP, MPTCP)
#define REASON_SOCKOPT 7          // a routing header or IP options asked for with setsockopt
#define REASON_PACKET_OPTIONS 8   // a packet carrying IPv4 options or IPv6 extension headers
#define REASON_UNSPECIFIED 9      // 0.0.0.0/8, :: or ::ffff:0.0.0.0/104: the local host
#define REASON_EXC_ENDED 10       // a packet of a connection whose exception has ended
#define REASON_LEARNED_UDP 11     // UDP to an address learned for a host name: no name to check
#define REASON_ORIGINS_FULL 12    // the redirect could not be recorded

// Hooks.
#define HOOK_CONNECT4 1
#define HOOK_CONNECT6 2
#define HOOK_SENDMSG4 3
#define HOOK_SENDMSG6 4
#define HOOK_SOCK_CREATE 5
#define HOOK_SETSOCKOPT 6
#define HOOK_EGRESS 7
#define HOOK_SOCKOPS 8

// config.flags
#define FLAG_ALLOW_RAW 1          // the agent holds an approved CAP_NET_RAW: raw and ping sockets
#define FLAG_NAMES 2              // egc's DNS gateway and name gate serve this agent
#define FLAG_AUDIT 4              // audit mode: report would-be denials, allow them

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_RAW 3
#define IPPROTO_ICMPV6 58
#define SOL_IP 0
#define SOL_IPV6 41
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

struct lpm_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct port_rule {
	__u16 port_lo;
	__u16 port_hi;
	__u8 protocol;          // IPPROTO_TCP (6) or IPPROTO_UDP (17)
	__u8 pad;
	__u16 exception_slot;   // 0: a policy rule; otherwise an index into `exceptions`
};

struct rule_set {
	__u32 count;
	__u32 pad;
	struct port_rule rules[MAX_RULES];
};

struct exception_slot {
	__u64 expires_boot_ns;  // CLOCK_BOOTTIME; the entry is dead from this instant on
	__u64 max_uses;         // 0: unbounded within the lifetime
	__u64 used;             // connections opened through this slot
};

struct config {
	__u32 agent_id;
	__u32 flags;
	__u16 dns_port;         // host byte order: the DNS gateway, at 127.0.0.1 and ::1
	__u16 gate_port;        // host byte order: the name gate, at 127.0.0.1 and ::1
	__u32 pad;
};

// Where a redirected socket was going: recorded by socket cookie when the connect or
// sendmsg hook sends it to the DNS gateway or the name gate.
#define ORIGIN_DNS 1
#define ORIGIN_GATE 2

struct origin {
	__u8 addr[16];          // IPv4 addresses IPv4-mapped
	__u16 port;             // host byte order
	__u8 kind;              // ORIGIN_DNS or ORIGIN_GATE
	__u8 family;            // AF_INET or AF_INET6 (the socket's)
	__u32 pad;
};

struct deny_event {
	__u64 boot_ns;
	__u32 agent_id;
	__u32 pid;
	__u32 uid;
	__u16 port;             // host byte order
	__u8 protocol;
	__u8 reason;
	__u8 hook;
	__u8 audit;             // 1: audit mode let it through
	__u8 pad[2];
	__u8 addr[16];          // IPv4 addresses IPv4-mapped
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, RULES_MAX_ENTRIES);
	__type(key, struct lpm_key);
	__type(value, struct rule_set);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_EXCEPTION_SLOTS);
	__type(key, __u32);
	__type(value, struct exception_slot);
} exceptions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

// Sockets connected through an exception, by socket cookie: the slot that admitted each,
// so the egress gate can end the connection when the exception ends. Only exception
// connections are recorded. When user space frees a slot it marks the slot's sockets
// ENDED_SLOT, so a later exception in the same slot does not revive them. Entries are
// not removed when a socket closes, so an attachment records at most SOCKETS_MAX_ENTRIES
// exception connections over its life; when the map is full, an exception connect is
// refused rather than left unwatched.
#define ENDED_SLOT 0xffff
#define SOCKETS_MAX_ENTRIES 65536

struct sock_state {
	__u16 exception_slot;
	__u8 reported;
	__u8 pad[5];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SOCKETS_MAX_ENTRIES);
	__type(key, __u64);
	__type(value, struct sock_state);
} sockets SEC(".maps");

// Addresses learned by the DNS gateway from answers for the agent's host names, with the
// ports and protocols of the destinations that admitted them (exception_slot unused).
// A TCP connect to one is redirected to the name gate; user space adds and removes
// entries as answers arrive and their TTLs expire.
#define LEARNED_MAX_ENTRIES 65536

struct learned_key {
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LEARNED_MAX_ENTRIES);
	__type(key, struct learned_key);
	__type(value, struct rule_set);
} learned SEC(".maps");

// Original destinations of redirected sockets, by socket cookie.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct origin);
} origins SEC(".maps");

// Original destinations of connections to the name gate, by the client's local port
// and family (key: family << 16 | port), written when the SYN leaves (sockops): the gate
// looks up where an accepted connection was going.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct origin);
} gate_clients SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline void count(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &index);
	if (value)
		*value += 1;
}

static __always_inline __u32 agent_id(void)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	return cfg ? cfg->agent_id : 0;
}

static __always_inline __u32 config_flags(void)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	return cfg ? cfg->flags : 0;
}

static __always_inline int audit_mode(void)
{
	return (config_flags() & FLAG_AUDIT) != 0;
}

// The verdict after a reported denial: 0 (refuse), or 1 in audit mode (let it through;
// the event says so).
static __always_inline int audited(void)
{
	if (audit_mode()) {
		count(CNT_AUDITED);
		return 1;
	}
	return 0;
}

// Reports a denial on the ring buffer. `with_task`: the hook runs in the task's context
// (pid, uid and comm are meaningful); the egress gate may run in softirq context.
static __always_inline void report(const __u8 *addr, __u8 protocol, __u16 port, __u8 reason,
				   __u8 hook, int with_task)
{
	struct deny_event *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (!event) {
		count(CNT_EVENTS_DROPPED);
		return;
	}
	event->boot_ns = bpf_ktime_get_boot_ns();
	event->agent_id = agent_id();
	event->pid = 0;
	event->uid = 0;
	__builtin_memset(event->comm, 0, sizeof(event->comm));
	if (with_task) {
		__u64 pid_tgid = bpf_get_current_pid_tgid();
		__u64 uid_gid = bpf_get_current_uid_gid();
		event->pid = pid_tgid >> 32;
		event->uid = (__u32)uid_gid;
		bpf_get_current_comm(event->comm, sizeof(event->comm));
	}
	event->port = port;
	event->protocol = protocol;
	event->reason = reason;
	event->hook = hook;
	event->audit = audit_mode() ? 1 : 0;
	event->pad[0] = 0;
	event->pad[1] = 0;
	__builtin_memcpy(event->addr, addr, 16);
	bpf_ringbuf_submit(event, 0);
}

static __always_inline int deny(struct lpm_key *key, __u8 protocol, __u16 port, __u8 reason,
				__u8 hook)
{
	count(CNT_DENIED);
	switch (reason) {
	case REASON_NO_PREFIX:
		count(CNT_DENIED_NO_PREFIX);
		break;
	case REASON_PORT:
		count(CNT_DENIED_PORT);
		break;
	case REASON_PROTOCOL:
		count(CNT_DENIED_PROTOCOL);
		break;
	case REASON_EXC_EXPIRED:
		count(CNT_DENIED_EXC_EXPIRED);
		break;
	case REASON_EXC_EXHAUSTED:
		count(CNT_DENIED_EXC_EXHAUSTED);
		break;
	case REASON_UNSPECIFIED:
		count(CNT_DENIED_UNSPECIFIED);
		break;
	}
	report(key->addr, protocol, port, reason, hook, 1);
	if (audit_mode()) {
		count(CNT_AUDITED);
		return 1;
	}
	return 0;
}

// 0.0.0.0/8 (stored IPv4-mapped) and ::.
static __always_inline int is_unspecified(const __u8 *addr)
{
	__u8 high = 0;
	for (int i = 0; i < 10; i++)
		high |= addr[i];
	if (high != 0)
		return 0;
	if (addr[10] == 0xff && addr[11] == 0xff)
		return addr[12] == 0;
	if (addr[10] != 0 || addr[11] != 0)
		return 0;
	return (addr[12] | addr[13] | addr[14] | addr[15]) == 0;
}

// Records which exception slot admitted a connecting socket (0: a policy rule, which
// forgets an earlier slot of a socket connected again). Returns 0 when an exception
// connection cannot be recorded (the map is full): the caller refuses it.
static __always_inline int remember_slot(struct bpf_sock_addr *ctx, __u16 slot)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	if (slot == 0) {
		bpf_map_delete_elem(&sockets, &cookie);
		return 1;
	}
	struct sock_state state = {};
	state.exception_slot = slot;
	return bpf_map_update_elem(&sockets, &cookie, &state, BPF_ANY) == 0;
}

static __always_inline int is_ipv4_mapped(const __u8 *addr)
{
	__u8 high = 0;
	for (int i = 0; i < 10; i++)
		high |= addr[i];
	return high == 0 && addr[10] == 0xff && addr[11] == 0xff;
}

// Sends the socket to egc's DNS gateway or name gate on the loopback address of its own
// family (an IPv6 socket going to an IPv4-mapped address goes to ::ffff:127.0.0.1).
static __always_inline void redirect(struct bpf_sock_addr *ctx, const struct lpm_key *key, int v6,
				     __u16 port)
{
	if (!v6) {
		ctx->user_ip4 = bpf_htonl(0x7f000001);
	} else if (is_ipv4_mapped(key->addr)) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = bpf_htonl(0x7f000001);
	} else {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	}
	ctx->user_port = bpf_htons(port);
}

static __always_inline int record_origin(struct bpf_sock_addr *ctx, const struct lpm_key *key,
					 __u16 port, __u8 kind, int v6)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct origin origin = {};
	__builtin_memcpy(origin.addr, key->addr, 16);
	origin.port = port;
	origin.kind = kind;
	origin.family = v6 ? AF_INET6 : AF_INET;
	return bpf_map_update_elem(&origins, &cookie, &origin, BPF_ANY) == 0;
}

// Does a matching rule admit the socket now? A policy rule (slot 0) always does; an
// exception slot only while it lives and has uses left. Records which slot admitted a
// connecting socket; on refusal sets `reason`.
static __always_inline int slot_admits(struct bpf_sock_addr *ctx, __u16 slot_number, int connecting,
				       __u8 *reason)
{
	if (slot_number == 0) {
		if (connecting)
			remember_slot(ctx, 0);
		return 1;
	}
	__u32 slot_index = slot_number;
	struct exception_slot *slot = bpf_map_lookup_elem(&exceptions, &slot_index);
	if (!slot)
		return 0;
	if (bpf_ktime_get_boot_ns() >= slot->expires_boot_ns) {
		*reason = REASON_EXC_EXPIRED;
		return 0;
	}
	__u64 before = __sync_fetch_and_add(&slot->used, 1);
	if (slot->max_uses != 0 && before >= slot->max_uses) {
		*reason = REASON_EXC_EXHAUSTED;
		return 0;
	}
	if (connecting && !remember_slot(ctx, slot_number)) {
		*reason = REASON_EXC_EXHAUSTED;
		return 0;
	}
	count(CNT_ALLOWED_VIA_EXCEPTION);
	return 1;
}

// A connection to an address the DNS gateway learned for one of the agent's host names,
// on a port and protocol of a destination that admitted it: a TCP connect goes to the
// name gate, which checks the SNI (or Host) before splicing it to the address. Returns
// -1 when the address is not learned for this port and protocol.
static __always_inline int via_gate(struct bpf_sock_addr *ctx, struct lpm_key *key, __u8 protocol,
				    __u16 port, __u8 hook, int connecting, int v6, __u16 gate_port)
{
	struct learned_key lkey;
	__builtin_memcpy(lkey.addr, key->addr, 16);
	struct rule_set *set = bpf_map_lookup_elem(&learned, &lkey);
	if (!set)
		return -1;
	// No name can be checked in a datagram: UDP to a learned address stays closed. A UDP
	// connect (resolvers use one to sort addresses; it sends nothing) goes to the gate's
	// UDP sink, which drops and reports whatever is sent; an unconnected datagram is refused.
	if (protocol != IPPROTO_TCP) {
		if (!connecting)
			return deny(key, protocol, port, REASON_LEARNED_UDP, hook);
		remember_slot(ctx, 0);
		redirect(ctx, key, v6, gate_port);
		return 1;
	}
	int found = 0;
	__u8 reason = REASON_PORT;
	__u32 n = set->count;
	for (__u32 i = 0; i < MAX_RULES; i++) {
		if (i >= n)
			break;
		struct port_rule *rule = &set->rules[i];
		if (rule->protocol != protocol || port < rule->port_lo || port > rule->port_hi)
			continue;
		found = 1;
		// Learned for an exception's name: only while the exception lives.
		if (slot_admits(ctx, rule->exception_slot, connecting, &reason))
			break;
		found = 0;
	}
	if (!found)
		return reason == REASON_PORT ? -1 : deny(key, protocol, port, reason, hook);
	if (!record_origin(ctx, key, port, ORIGIN_GATE, v6))
		return deny(key, protocol, port, REASON_ORIGINS_FULL, hook);
	redirect(ctx, key, v6, gate_port);
	count(CNT_GATE_REDIRECTED);
	return 1;
}

// Returns 1 to allow, 0 to deny (the kernel turns 0 into EPERM).
static __always_inline int decide(struct bpf_sock_addr *ctx, struct lpm_key *key, __u8 hook,
				  int connecting, int v6)
{
	__u8 protocol = (__u8)ctx->protocol;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);

	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return deny(key, protocol, port, REASON_PROTOCOL, hook);

	// The unspecified address reaches the local host whatever the rules say.
	if (is_unspecified(key->addr))
		return deny(key, protocol, port, REASON_UNSPECIFIED, hook);

	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	__u32 flags = cfg ? cfg->flags : 0;
	__u16 dns_port = cfg ? cfg->dns_port : 0;
	__u16 gate_port = cfg ? cfg->gate_port : 0;
	int names = (flags & FLAG_NAMES) && dns_port != 0 && gate_port != 0;

	// Every DNS query, to any address, goes to egc's DNS gateway, which answers only
	// the agent's host names: no other name ever leaves the machine.
	if (names && port == 53) {
		if (!record_origin(ctx, key, port, ORIGIN_DNS, v6))
			return deny(key, protocol, port, REASON_ORIGINS_FULL, hook);
		redirect(ctx, key, v6, dns_port);
		count(CNT_DNS_REDIRECTED);
		return 1;
	}

	__u8 reason = REASON_NO_PREFIX;
	struct rule_set *set = bpf_map_lookup_elem(&rules, key);
	if (set) {
		reason = REASON_PORT;
		__u32 n = set->count;
		for (__u32 i = 0; i < MAX_RULES; i++) {
			if (i >= n)
				break;
			struct port_rule *rule = &set->rules[i];
			if (rule->protocol != protocol || port < rule->port_lo || port > rule->port_hi)
				continue;
			if (slot_admits(ctx, rule->exception_slot, connecting, &reason)) {
				count(CNT_ALLOWED);
				return 1;
			}
		}
	}
	if (names) {
		int verdict = via_gate(ctx, key, protocol, port, hook, connecting, v6, gate_port);
		if (verdict >= 0)
			return verdict;
	}
	return deny(key, protocol, port, reason, hook);
}

static __always_inline void key_from_ip4(struct lpm_key *key, __u32 ip4)
{
	key->prefixlen = 128;
	__builtin_memset(key->addr, 0, 10);
	key->addr[10] = 0xff;
	key->addr[11] = 0xff;
	__builtin_memcpy(&key->addr[12], &ip4, 4);
}

static __always_inline void key_from_ip6(struct lpm_key *key, struct bpf_sock_addr *ctx)
{
	__u32 words[4];
	words[0] = ctx->user_ip6[0];
	words[1] = ctx->user_ip6[1];
	words[2] = ctx->user_ip6[2];
	words[3] = ctx->user_ip6[3];
	key->prefixlen = 128;
	__builtin_memcpy(key->addr, words, 16);
}

SEC("cgroup/connect4")
int egc_connect4(struct bpf_sock_addr *ctx)
{
	struct lpm_key key;
	key_from_ip4(&key, ctx->user_ip4);
	return decide(ctx, &key, HOOK_CONNECT4, 1, 0);
}

SEC("cgroup/connect6")
int egc_connect6(struct bpf_sock_addr *ctx)
{
	struct lpm_key key;
	key_from_ip6(&key, ctx);
	return decide(ctx, &key, HOOK_CONNECT6, 1, 1);
}

SEC("cgroup/sendmsg4")
int egc_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct lpm_key key;
	key_from_ip4(&key, ctx->user_ip4);
	return decide(ctx, &key, HOOK_SENDMSG4, 0, 0);
}

SEC("cgroup/sendmsg6")
int egc_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct lpm_key key;
	key_from_ip6(&key, ctx);
	return decide(ctx, &key, HOOK_SENDMSG6, 0, 1);
}

// A socket egc redirected shows the address it asked for, not egc's: replies from the
// DNS gateway come from the address the query was sent to (resolvers such as glibc check
// that), and getpeername() of a connection to the gateway or the gate names the original
// destination. Returns the recorded origin when the peer in `ctx` is egc's port.
static __always_inline struct origin *redirect_origin(struct bpf_sock_addr *ctx)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !(cfg->flags & FLAG_NAMES))
		return 0;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 kind;
	if (cfg->dns_port != 0 && port == cfg->dns_port)
		kind = ORIGIN_DNS;
	else if (cfg->gate_port != 0 && port == cfg->gate_port)
		kind = ORIGIN_GATE;
	else
		return 0;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct origin *origin = bpf_map_lookup_elem(&origins, &cookie);
	if (!origin || origin->kind != kind)
		return 0;
	return origin;
}

static __always_inline int restore_origin4(struct bpf_sock_addr *ctx)
{
	if (ctx->user_ip4 != bpf_htonl(0x7f000001))
		return 1;
	struct origin *origin = redirect_origin(ctx);
	if (!origin || !is_ipv4_mapped(origin->addr))
		return 1;
	__u32 ip4;
	__builtin_memcpy(&ip4, &origin->addr[12], 4);
	ctx->user_ip4 = ip4;
	ctx->user_port = bpf_htons(origin->port);
	return 1;
}

static __always_inline int restore_origin6(struct bpf_sock_addr *ctx)
{
	__u32 w3 = ctx->user_ip6[3];
	__u32 w2 = ctx->user_ip6[2];
	if (ctx->user_ip6[0] != 0 || ctx->user_ip6[1] != 0)
		return 1;
	int loopback6 = w2 == 0 && w3 == bpf_htonl(1);
	int loopback4 = w2 == bpf_htonl(0x0000ffff) && w3 == bpf_htonl(0x7f000001);
	if (!loopback6 && !loopback4)
		return 1;
	struct origin *origin = redirect_origin(ctx);
	if (!origin)
		return 1;
	__u32 words[4];
	__builtin_memcpy(words, origin->addr, 16);
	ctx->user_ip6[0] = words[0];
	ctx->user_ip6[1] = words[1];
	ctx->user_ip6[2] = words[2];
	ctx->user_ip6[3] = words[3];
	ctx->user_port = bpf_htons(origin->port);
	return 1;
}

SEC("cgroup/recvmsg4")
int egc_recvmsg4(struct bpf_sock_addr *ctx)
{
	return restore_origin4(ctx);
}

SEC("cgroup/recvmsg6")
int egc_recvmsg6(struct bpf_sock_addr *ctx)
{
	return restore_origin6(ctx);
}

SEC("cgroup/getpeername4")
int egc_getpeername4(struct bpf_sock_addr *ctx)
{
	return restore_origin4(ctx);
}

SEC("cgroup/getpeername6")
int egc_getpeername6(struct bpf_sock_addr *ctx)
{
	return restore_origin6(ctx);
}

// When a connection redirected to the name gate sends its SYN, its local port is known:
// record where it was going under that port, for the gate to look up on accept.
SEC("sockops")
int egc_sockops(struct bpf_sock_ops *skops)
{
	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct origin *origin = bpf_map_lookup_elem(&origins, &cookie);
	if (!origin || origin->kind != ORIGIN_GATE)
		return 1;
	// The gate sees an IPv6 socket's connection to ::ffff:127.0.0.1 as IPv4: key by the
	// connection's family, not the socket's.
	__u32 family = skops->family;
	if (family == AF_INET6 && skops->remote_ip6[0] == 0 && skops->remote_ip6[1] == 0 &&
	    skops->remote_ip6[2] == bpf_htonl(0x0000ffff))
		family = AF_INET;
	__u32 key = (family << 16) | (skops->local_port & 0xffff);
	struct origin copy = *origin;
	bpf_map_update_elem(&gate_clients, &key, &copy, BPF_ANY);
	return 1;
}

// Inet sockets other than TCP and UDP never pass the connect hooks (raw and packet
// sockets, ICMP "ping" datagram sockets, SCTP, MPTCP, UDP-Lite): refuse to create them,
// unless the agent holds an approved CAP_NET_RAW (then raw and ping sockets only).
SEC("cgroup/sock_create")
int egc_sock_create(struct bpf_sock *ctx)
{
	__u32 family = ctx->family;
	if (family != AF_INET && family != AF_INET6)
		return 1;
	__u32 type = ctx->type;
	__u32 protocol = ctx->protocol;
	if (type == SOCK_STREAM && protocol == IPPROTO_TCP)
		return 1;
	if (type == SOCK_DGRAM && protocol == IPPROTO_UDP)
		return 1;
	if ((config_flags() & FLAG_ALLOW_RAW) &&
	    (type == SOCK_RAW || (type == SOCK_DGRAM && (protocol == IPPROTO_ICMP ||
							 protocol == IPPROTO_ICMPV6))))
		return 1;
	__u8 zero[16] = {};
	count(CNT_DENIED);
	count(CNT_DENIED_SOCKET);
	report(zero, (__u8)protocol, (__u16)type, REASON_SOCKET_KIND, HOOK_SOCK_CREATE, 1);
	return audited();
}

// Socket options that route a packet through other addresses than the one the connect
// hook judged (IPv6 routing headers, IPv4 source routes), or that carry extension headers.
static __always_inline int routing_option(__s32 level, __s32 optname)
{
	if (level == SOL_IP)
		return optname == 4 /* IP_OPTIONS */ || optname == 7 /* IP_RETOPTS */;
	if (level == SOL_IPV6)
		return optname == 3 /* IPV6_2292HOPOPTS */ || optname == 4 /* IPV6_2292DSTOPTS */ ||
		       optname == 5 /* IPV6_2292RTHDR */ || optname == 6 /* IPV6_2292PKTOPTIONS */ ||
		       optname == 54 /* IPV6_HOPOPTS */ || optname == 55 /* IPV6_RTHDRDSTOPTS */ ||
		       optname == 57 /* IPV6_RTHDR */ || optname == 59 /* IPV6_DSTOPTS */;
	return 0;
}

SEC("cgroup/setsockopt")
int egc_setsockopt(struct bpf_sockopt *ctx)
{
	__s32 level = ctx->level;
	__s32 optname = ctx->optname;
	if (!routing_option(level, optname))
		return 1;
	__u8 zero[16] = {};
	count(CNT_DENIED);
	count(CNT_DENIED_SOCKOPT);
	report(zero, (__u8)level, (__u16)optname, REASON_SOCKOPT, HOOK_SETSOCKOPT, 1);
	return audited();
}

// The second gate, on every packet the cgroup sends: no IPv4 options and no IPv6
// routing, hop-by-hop or destination-options header (routing headers can also be passed
// per packet as control messages, which no socket option hook sees), and no packet of a
// connection whose exception has expired or been revoked.
SEC("cgroup_skb/egress")
int egc_egress(struct __sk_buff *skb)
{
	__u8 addr[16] = {};
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		__u8 first = 0;
		if (bpf_skb_load_bytes(skb, 0, &first, 1) < 0)
			return 1;
		if ((first & 0x0f) > 5) {
			__u32 daddr = 0;
			bpf_skb_load_bytes(skb, 16, &daddr, 4);
			addr[10] = 0xff;
			addr[11] = 0xff;
			__builtin_memcpy(&addr[12], &daddr, 4);
			count(CNT_DROPPED_PACKETS);
			report(addr, 0, 0, REASON_PACKET_OPTIONS, HOOK_EGRESS, 0);
			return audited();
		}
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		__u8 next = 0;
		if (bpf_skb_load_bytes(skb, 6, &next, 1) < 0)
			return 1;
		if (next == 0 /* hop-by-hop */ || next == 43 /* routing */ ||
		    next == 60 /* destination options */) {
			bpf_skb_load_bytes(skb, 24, addr, 16);
			count(CNT_DROPPED_PACKETS);
			report(addr, next, 0, REASON_PACKET_OPTIONS, HOOK_EGRESS, 0);
			return audited();
		}
	}
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct sock_state *state = bpf_map_lookup_elem(&sockets, &cookie);
	if (!state || state->exception_slot == 0)
		return 1;
	__u32 slot_index = state->exception_slot;
	struct exception_slot *slot = bpf_map_lookup_elem(&exceptions, &slot_index);
	if (slot && bpf_ktime_get_boot_ns() < slot->expires_boot_ns)
		return 1;
	count(CNT_DROPPED_PACKETS);
	if (!state->reported) {
		state->reported = 1;
		struct bpf_sock *sk = skb->sk;
		if (sk)
			sk = bpf_sk_fullsock(sk);
		if (sk) {
			__u32 ip4 = sk->dst_ip4;
			if (sk->family == AF_INET) {
				addr[10] = 0xff;
				addr[11] = 0xff;
				__builtin_memcpy(&addr[12], &ip4, 4);
			} else {
				__u32 words[4];
				words[0] = sk->dst_ip6[0];
				words[1] = sk->dst_ip6[1];
				words[2] = sk->dst_ip6[2];
				words[3] = sk->dst_ip6[3];
				__builtin_memcpy(addr, words, 16);
			}
			report(addr, (__u8)sk->protocol, bpf_ntohs(sk->dst_port),
			       REASON_EXC_ENDED, HOOK_EGRESS, 0);
		}
	}
	return audited();
}

char LICENSE[] SEC("license") = "GPL";
