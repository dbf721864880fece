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
#define CNT_MAX 16

// Denial reasons.
#define REASON_NO_PREFIX 1
#define REASON_PORT 2
#define REASON_PROTOCOL 3
#define REASON_EXC_EXPIRED 4
#define REASON_EXC_EXHAUSTED 5

// Hooks.
#define HOOK_CONNECT4 1
#define HOOK_CONNECT6 2
#define HOOK_SENDMSG4 3
#define HOOK_SENDMSG6 4

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
	__u8 pad[3];
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
	}
	struct deny_event *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (!event) {
		count(CNT_EVENTS_DROPPED);
		return 0;
	}
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	event->boot_ns = bpf_ktime_get_boot_ns();
	event->agent_id = agent_id();
	event->pid = pid_tgid >> 32;
	event->uid = (__u32)uid_gid;
	event->port = port;
	event->protocol = protocol;
	event->reason = reason;
	event->hook = hook;
	event->pad[0] = 0;
	event->pad[1] = 0;
	event->pad[2] = 0;
	__builtin_memcpy(event->addr, key->addr, 16);
	bpf_get_current_comm(event->comm, sizeof(event->comm));
	bpf_ringbuf_submit(event, 0);
	return 0;
}

// Returns 1 to allow, 0 to deny (the kernel turns 0 into EPERM).
static __always_inline int decide(struct bpf_sock_addr *ctx, struct lpm_key *key, __u8 hook)
{
	__u8 protocol = (__u8)ctx->protocol;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);

	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return deny(key, protocol, port, REASON_PROTOCOL, hook);

	struct rule_set *set = bpf_map_lookup_elem(&rules, key);
	if (!set)
		return deny(key, protocol, port, REASON_NO_PREFIX, hook);

	__u8 reason = REASON_PORT;
	__u32 n = set->count;
	for (__u32 i = 0; i < MAX_RULES; i++) {
		if (i >= n)
			break;
		struct port_rule *rule = &set->rules[i];
		if (rule->protocol != protocol || port < rule->port_lo || port > rule->port_hi)
			continue;
		if (rule->exception_slot == 0) {
			count(CNT_ALLOWED);
			return 1;
		}
		__u32 slot_index = rule->exception_slot;
		struct exception_slot *slot = bpf_map_lookup_elem(&exceptions, &slot_index);
		if (!slot)
			continue;
		if (bpf_ktime_get_boot_ns() >= slot->expires_boot_ns) {
			reason = REASON_EXC_EXPIRED;
			continue;
		}
		__u64 before = __sync_fetch_and_add(&slot->used, 1);
		if (slot->max_uses != 0 && before >= slot->max_uses) {
			reason = REASON_EXC_EXHAUSTED;
			continue;
		}
		count(CNT_ALLOWED);
		count(CNT_ALLOWED_VIA_EXCEPTION);
		return 1;
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
	return decide(ctx, &key, HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int egc_connect6(struct bpf_sock_addr *ctx)
{
	struct lpm_key key;
	key_from_ip6(&key, ctx);
	return decide(ctx, &key, HOOK_CONNECT6);
}

SEC("cgroup/sendmsg4")
int egc_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct lpm_key key;
	key_from_ip4(&key, ctx->user_ip4);
	return decide(ctx, &key, HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int egc_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct lpm_key key;
	key_from_ip6(&key, ctx);
	return decide(ctx, &key, HOOK_SENDMSG6);
}

char LICENSE[] SEC("license") = "GPL";
