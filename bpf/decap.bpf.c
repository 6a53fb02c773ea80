// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * rvs real-server helper (XDP): decapsulates the tunnels rvs's TUN
 * forwarding sends — IP-in-IP (4in4, 6in6, 4in6, 6in4), GUE (to a UDP port
 * listed in decap_gue_ports; variant 0 with the inner protocol in
 * proto/ctype, or variant 1, direct IP) and GRE (optional checksum, key and
 * sequence number) — in place, rebuilding the Ethernet header in front of
 * the inner packet with the inner EtherType, and hands the result to the
 * kernel (XDP_PASS), which delivers it to the VIP held on lo. For real
 * servers whose kernel lacks the ipip/fou/gre modules (as this lab's does).
 * Everything else passes untouched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u16); /* UDP port, network order */
	__type(value, __u32);
} decap_gue_ports SEC(".maps");

enum { D_SEEN, D_DECAP, D_PASSED, D_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, D_MAX);
	__type(key, __u32);
	__type(value, __u64);
} decap_stats SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&decap_stats, &which);
	if (v)
		*v += 1;
}

static __always_inline int pass(void)
{
	count(D_PASSED);
	return XDP_PASS;
}

/* Strips `outer` bytes after the Ethernet header; the new Ethernet header
 * keeps the MACs and carries `inner_type`. */
static __always_inline int strip(struct xdp_md *ctx, int outer, __u16 inner_type)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr eth;
	if (data + sizeof(eth) > end)
		return pass();
	__builtin_memcpy(&eth, data, sizeof(eth));
	if (bpf_xdp_adjust_head(ctx, outer))
		return pass();
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + sizeof(eth) > end)
		return XDP_DROP;
	eth.h_proto = inner_type;
	__builtin_memcpy(data, &eth, sizeof(eth));
	count(D_DECAP);
	return XDP_PASS;
}

static __always_inline __u16 type_of_ipproto(__u8 p)
{
	return p == IPPROTO_IPIP ? bpf_htons(ETH_P_IP) : p == IPPROTO_IPV6 ? bpf_htons(ETH_P_IPV6) : 0;
}

SEC("xdp")
int rvs_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	count(D_SEEN);
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return pass();
	__u8 *p = (__u8 *)(eth + 1);
	__u8 proto;
	int ihl;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		if ((void *)(p + 20) > end)
			return pass();
		ihl = (p[0] & 0x0f) * 4;
		if ((p[0] >> 4) != 4 || ihl < 20 || (bpf_ntohs(*(__u16 *)(p + 6)) & 0x3fff) != 0)
			return pass(); /* not IPv4, or a fragment */
		proto = p[9];
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		if ((void *)(p + 40) > end)
			return pass();
		ihl = 40;
		proto = p[6];
	} else {
		return pass();
	}
	if (ihl > 60)
		return pass();
	__u8 *l4 = p + ihl;
	__u16 inner = type_of_ipproto(proto);
	if (inner)
		return strip(ctx, ihl, inner);
	if (proto == IPPROTO_GRE) {
		if ((void *)(l4 + 4) > end)
			return pass();
		__u16 flags = bpf_ntohs(*(__u16 *)l4);
		__u16 ptype = *(__u16 *)(l4 + 2);
		if ((flags & 0x0007) != 0 || (flags & 0x4000) != 0) /* version 0, no routing */
			return pass();
		int len = 4 + ((flags & 0x8000) ? 4 : 0) + ((flags & 0x2000) ? 4 : 0) + ((flags & 0x1000) ? 4 : 0);
		if (ptype != bpf_htons(ETH_P_IP) && ptype != bpf_htons(ETH_P_IPV6))
			return pass();
		return strip(ctx, ihl + len, ptype);
	}
	if (proto == IPPROTO_UDP) {
		if ((void *)(l4 + 12) > end)
			return pass();
		__u16 dport = *(__u16 *)(l4 + 2);
		if (!bpf_map_lookup_elem(&decap_gue_ports, &dport))
			return pass();
		__u8 g0 = l4[8];
		if ((g0 >> 6) == 1) {
			/* Variant 1: the inner IP header follows the UDP header. */
			__u8 v = l4[8] >> 4;
			return strip(ctx, ihl + 8, v == 4 ? bpf_htons(ETH_P_IP) : bpf_htons(ETH_P_IPV6));
		}
		if ((g0 >> 6) != 0 || (g0 & 0x20)) /* variant 0 data messages only */
			return pass();
		int hlen = (g0 & 0x1f) * 4;
		__u16 t = type_of_ipproto(l4[9]);
		if (!t)
			return pass();
		return strip(ctx, ihl + 8 + 4 + hlen, t);
	}
	return pass();
}

char _license[] SEC("license") = "Dual MIT/GPL";
