// XDP members for dispatcher and native-mode tests. Every program counts the packets it sees in slot 0
// of its own object's `xdp_hits` map, then returns a fixed verdict.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} xdp_hits SEC(".maps");

static __always_inline void count_packet(void)
{
    __u32 key = 0;
    __u64 *value = bpf_map_lookup_elem(&xdp_hits, &key);
    if (value)
        __sync_fetch_and_add(value, 1);
}

SEC("xdp")
int xdp_count_pass(struct xdp_md *ctx)
{
    count_packet();
    return XDP_PASS;
}

SEC("xdp")
int xdp_count_drop(struct xdp_md *ctx)
{
    count_packet();
    return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
