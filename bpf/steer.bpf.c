// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * rvs steering program (XDP). Frames of configured virtual services, and
 * replies from NAT real servers, go to the AF_XDP socket of their receive
 * queue, where the rvs engine handles them; everything else (ARP, ND, the
 * director's own traffic, health checks and their answers, SSH) goes to
 * the kernel. When no socket is registered for the queue, bpf_redirect_map
 * falls back to XDP_PASS, so the kernel is never left without traffic it
 * should see, and never also processes a frame that was steered.
 *
 * Maps (keys in network byte order, addresses IPv4-mapped in 16 bytes):
 *   rvs_vips   {proto, port, addr} -> flags: destination matches a service
 *              (port 0 = every port of the VIP for that protocol); proto 0,
 *              port 0 = ICMP errors sent to the VIP;
 *   rvs_reals  {proto, port, addr} -> flags: source matches a NAT real server
 *              (port 0 = every port: real servers of fwmark services that
 *              keep the client's destination port);
 *   rvs_locals {addr} -> flags: the director's own addresses; a frame from a
 *              real server to one of them is the director's own traffic
 *              (a health check, SSH), never a NAT reply, and is left to
 *              the kernel;
 *   rvs_xsks   XSKMAP by rx_queue_index: rvsd registers a socket on every
 *              receive queue of the interface;
 *   rvs_stats  per-CPU counters: seen, steered, passed, parse_error.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct rvs_key {
	__u8 proto;
	__u8 pad;
	__u16 port;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct rvs_key);
	__type(value, __u32);
} rvs_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct rvs_key);
	__type(value, __u32);
} rvs_reals SEC(".maps");

struct rvs_addr {
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct rvs_addr);
	__type(value, __u32);
} rvs_locals SEC(".maps");

/* One entry per receive queue; rvs_bpf::STEER_MAX_QUEUES says the same. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} rvs_xsks SEC(".maps");

enum { STAT_SEEN, STAT_STEERED, STAT_PASSED, STAT_PARSE_ERROR, STAT_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} rvs_stats SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&rvs_stats, &which);
	if (v)
		*v += 1;
}

static __always_inline int pass(void)
{
	count(STAT_PASSED);
	return XDP_PASS;
}

static __always_inline int parse_error(void)
{
	/* Malformed frames are the engine's to count and drop only when they
	 * are ours; a frame we cannot parse is left to the kernel, which
	 * drops it with its own counters. */
	count(STAT_PARSE_ERROR);
	return XDP_PASS;
}

static __always_inline int steer(struct xdp_md *ctx)
{
	count(STAT_STEERED);
	return bpf_redirect_map(&rvs_xsks, ctx->rx_queue_index, XDP_PASS);
}

static __always_inline void v4_mapped(__u8 *out, const __u8 *in)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	out[12] = in[0];
	out[13] = in[1];
	out[14] = in[2];
	out[15] = in[3];
}

static __always_inline int lookup(void *map, __u8 proto, __u16 port, const __u8 *addr)
{
	struct rvs_key k = { .proto = proto, .pad = 0, .port = port };
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(map, &k) != NULL;
}

static __always_inline int is_local(const __u8 *addr)
{
	struct rvs_addr k;
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&rvs_locals, &k) != NULL;
}

/* A NAT reply: from a real server (its port, or every port) to an address
 * that is not the director's own. */
static __always_inline int from_real(__u8 proto, __u16 port, const __u8 *src, const __u8 *dst)
{
	return (lookup(&rvs_reals, proto, port, src) || lookup(&rvs_reals, proto, 0, src)) &&
	       !is_local(dst);
}

SEC("xdp")
int rvs_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 src[16], dst[16];
	__u8 proto;
	__u16 sport = 0, dport = 0;
	int fragment = 0, icmp_error = 0;
	__u8 *l4;

	count(STAT_SEEN);
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return parse_error();
	__u16 type = eth->h_proto;
	__u8 *p = (__u8 *)(eth + 1);
	/* Up to two VLAN tags (802.1Q, 802.1ad). */
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (type != bpf_htons(ETH_P_8021Q) && type != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(p + 4) > end)
			return parse_error();
		type = *(__u16 *)(p + 2);
		p += 4;
	}
	if (type == bpf_htons(ETH_P_IP)) {
		if ((void *)(p + 20) > end)
			return parse_error();
		__u8 ihl = (p[0] & 0x0f) * 4;
		if ((p[0] >> 4) != 4 || ihl < 20)
			return parse_error();
		proto = p[9];
		fragment = (bpf_ntohs(*(__u16 *)(p + 6)) & 0x1fff) != 0;
		v4_mapped(src, p + 12);
		v4_mapped(dst, p + 16);
		l4 = p + ihl;
		if (proto == IPPROTO_ICMP && (void *)(l4 + 1) <= end)
			icmp_error = l4[0] == 3 || l4[0] == 11 || l4[0] == 12;
	} else if (type == bpf_htons(ETH_P_IPV6)) {
		if ((void *)(p + 40) > end)
			return parse_error();
		proto = p[6];
		__builtin_memcpy(src, p + 8, 16);
		__builtin_memcpy(dst, p + 24, 16);
		l4 = p + 40;
		/* A fragment header: steer by address only (the engine counts it). */
		fragment = proto == 44;
		if (proto == IPPROTO_ICMPV6 && (void *)(l4 + 1) <= end)
			icmp_error = l4[0] >= 1 && l4[0] <= 4;
	} else {
		return pass(); /* ARP and everything else */
	}

	if (!fragment && (proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP)) {
		if ((void *)(l4 + 4) > end)
			return parse_error();
		sport = *(__u16 *)l4;
		dport = *(__u16 *)(l4 + 2);
		if (lookup(&rvs_vips, proto, dport, dst) || lookup(&rvs_vips, proto, 0, dst))
			return steer(ctx);
		if (from_real(proto, sport, src, dst))
			return steer(ctx);
		return pass();
	}
	if (fragment && (lookup(&rvs_vips, proto, 0, dst) || lookup(&rvs_vips, 0, 0, dst)))
		return steer(ctx);
	if (icmp_error) {
		/* An ICMP error about one of our connections quotes it after the
		 * 8-byte ICMP header: from the client side it quotes VIP:vport ->
		 * client, from the real server side client -> RIP:rport. */
		__u8 *q = l4 + 8;
		__u8 qsrc[16], qdst[16], qproto;
		if (type == bpf_htons(ETH_P_IP)) {
			if ((void *)(q + 20) > end)
				return pass();
			int qihl = (q[0] & 0x0f) * 4;
			if (qihl < 20 || qihl > 60)
				return pass();
			qproto = q[9];
			v4_mapped(qsrc, q + 12);
			v4_mapped(qdst, q + 16);
			q += qihl;
		} else {
			if ((void *)(q + 40) > end)
				return pass();
			qproto = q[6];
			__builtin_memcpy(qsrc, q + 8, 16);
			__builtin_memcpy(qdst, q + 24, 16);
			q += 40;
		}
		if ((void *)(q + 4) > end)
			return pass();
		__u16 qsport = *(__u16 *)q, qdport = *(__u16 *)(q + 2);
		if (lookup(&rvs_vips, qproto, qsport, qsrc) || lookup(&rvs_vips, qproto, 0, qsrc) ||
		    from_real(qproto, qdport, qdst, dst) || lookup(&rvs_vips, 0, 0, dst))
			return steer(ctx);
	}
	return pass();
}

char _license[] SEC("license") = "Dual MIT/GPL";
