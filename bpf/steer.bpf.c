// SPDX-License-Identifier: BSD-3-Clause
//
// Rondo's XDP program for the af_xdp driver: frames whose destination address is in a VIP
// prefix (IPv4 or IPv6, any protocol, so ICMP echo and errors to a VIP as well) go to the
// AF_XDP socket of the queue they arrived on; everything else (ARP, BGP, SSH to the host,
// traffic to other addresses) is XDP_PASS, handled by the kernel as if we were not there.
//
// Maps (filled by the director, see src/drivers/af_xdp/prog.rs):
//   rondo_xsks  XSKMAP, rx queue index -> AF_XDP socket
//   rondo_vip4  LPM trie, {prefixlen, IPv4 address} -> 1
//   rondo_vip6  LPM trie, {prefixlen, IPv6 address} -> 1
//
// Built by build.rs with `clang -target bpf -O2 -g` when the cargo feature af_xdp is on.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_QUEUES 256
#define MAX_VIPS 4096
#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8

struct vip4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct vip6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} rondo_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_VIPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vip4_key);
	__type(value, __u8);
} rondo_vip4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_VIPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vip6_key);
	__type(value, __u8);
} rondo_vip6 SEC(".maps");

SEC("xdp")
int rondo_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u64 off = sizeof(*eth);
	__u16 proto;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	proto = eth->h_proto;
	// One VLAN tag (802.1Q or 802.1ad) is looked through.
	if (proto == bpf_htons(ETH_P_8021Q_) || proto == bpf_htons(ETH_P_8021AD_)) {
		__u16 *inner = data + off + 2;
		if ((void *)(inner + 1) > end)
			return XDP_PASS;
		proto = *inner;
		off += 4;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		// Destination address: bytes 16..20 of the IPv4 header.
		__u8 *ip = data + off;
		struct vip4_key k = { .prefixlen = 32 };
		if ((void *)(ip + 20) > end)
			return XDP_PASS;
		__builtin_memcpy(k.addr, ip + 16, 4);
		if (!bpf_map_lookup_elem(&rondo_vip4, &k))
			return XDP_PASS;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		// Destination address: bytes 24..40 of the IPv6 header.
		__u8 *ip = data + off;
		struct vip6_key k = { .prefixlen = 128 };
		if ((void *)(ip + 40) > end)
			return XDP_PASS;
		__builtin_memcpy(k.addr, ip + 24, 16);
		if (!bpf_map_lookup_elem(&rondo_vip6, &k))
			return XDP_PASS;
	} else {
		return XDP_PASS;
	}
	// A queue without a socket (or a director that has not bound it yet) passes.
	return bpf_redirect_map(&rondo_xsks, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
