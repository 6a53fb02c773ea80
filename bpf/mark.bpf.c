// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * rvs fwmark path. XDP runs before netfilter, so it never sees the mark the
 * user's iptables/nftables rules set; the kernel's policy routing does. rvsd
 * routes marked packets (`ip rule fwmark N lookup <rvs table>`) into its own
 * veth pair rvsmark0 -> rvsmark1, inside its own network namespace:
 *
 *   rvs_mark_tag (tc egress on rvsmark0) writes skb->mark into the frame's
 *     Ethernet source MAC, 02:52:m3:m2:m1:m0 (the mark in network byte
 *     order; the frame is rvs's from here on, nobody else reads that MAC),
 *     and gives back the TTL / hop limit the kernel's forwarding took
 *     (skb->ingress_ifindex != 0: the packet was received and forwarded, not
 *     sent by a local process), so the engine sees the packet as it arrived,
 *     as IPVS does on LOCAL_IN;
 *   rvs_mark_rx (XDP on rvsmark1) sends every tagged frame to the AF_XDP
 *     socket of its queue and drops the rest (nothing else belongs on this
 *     link, and the kernel must never route a frame that bypassed the
 *     balancer); the driver reads the mark back out of the MAC.
 *
 * Counters (per CPU): tagged, ttl_restored, steered, untagged (dropped).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define RVS_MARK_MAC0 0x02 /* locally administered, unicast */
#define RVS_MARK_MAC1 0x52 /* 'R' */

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} rvs_mark_xsks SEC(".maps");

enum { M_TAGGED, M_TTL_RESTORED, M_STEERED, M_UNTAGGED, M_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, M_MAX);
	__type(key, __u32);
	__type(value, __u64);
} rvs_mark_stats SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&rvs_mark_stats, &which);
	if (v)
		*v += 1;
}

/* Gives back the hop the kernel's forwarding took (never past 255). */
static __always_inline void restore_ttl(struct __sk_buff *skb, __u16 type)
{
	if (type == bpf_htons(ETH_P_IP)) {
		__u8 vihl;
		__u16 old, new;
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &vihl, 1) || (vihl >> 4) != 4)
			return;
		/* TTL and protocol share the 16-bit word at offset 8. */
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 8, &old, 2))
			return;
		__u8 *b = (__u8 *)&old;
		if (b[0] == 255)
			return;
		new = old;
		((__u8 *)&new)[0] = b[0] + 1;
		if (bpf_skb_store_bytes(skb, ETH_HLEN + 8, &new, 2, 0))
			return;
		bpf_l3_csum_replace(skb, ETH_HLEN + 10, old, new, 2);
		count(M_TTL_RESTORED);
	} else if (type == bpf_htons(ETH_P_IPV6)) {
		__u8 vtc, hl;
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &vtc, 1) || (vtc >> 4) != 6)
			return;
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 7, &hl, 1) || hl == 255)
			return;
		hl += 1;
		if (bpf_skb_store_bytes(skb, ETH_HLEN + 7, &hl, 1, 0))
			return;
		count(M_TTL_RESTORED);
	}
}

SEC("classifier")
int rvs_mark_tag(struct __sk_buff *skb)
{
	__u32 m = skb->mark;
	__u8 mac[6] = {
		RVS_MARK_MAC0, RVS_MARK_MAC1, (__u8)(m >> 24), (__u8)(m >> 16), (__u8)(m >> 8), (__u8)m,
	};
	__u16 type;
	if (bpf_skb_load_bytes(skb, 12, &type, 2))
		return TC_ACT_SHOT; /* shorter than an Ethernet header */
	if (bpf_skb_store_bytes(skb, 6, mac, 6, 0))
		return TC_ACT_SHOT;
	count(M_TAGGED);
	if (skb->ingress_ifindex != 0)
		restore_ttl(skb, type);
	return TC_ACT_OK;
}

SEC("xdp")
int rvs_mark_rx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_source[0] != RVS_MARK_MAC0 ||
	    eth->h_source[1] != RVS_MARK_MAC1) {
		count(M_UNTAGGED);
		return XDP_DROP;
	}
	count(M_STEERED);
	return bpf_redirect_map(&rvs_mark_xsks, ctx->rx_queue_index, XDP_DROP);
}

char _license[] SEC("license") = "Dual MIT/GPL";
