// XDP members whose function names sort alpha < beta < gamma, for the dispatcher's name tie-break (SPEC §4.7).
// Each counts the packets it sees in slot 0 of its own object's `xdp_hits` map and returns XDP_PASS.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} xdp_hits SEC(".maps");

static __always_inline int count_and_pass(void)
{
    __u32 key = 0;
    __u64 *value = bpf_map_lookup_elem(&xdp_hits, &key);
    if (value)
        __sync_fetch_and_add(value, 1);
    return XDP_PASS;
}

SEC("xdp")
int alpha(struct xdp_md *ctx)
{
    return count_and_pass();
}

SEC("xdp")
int beta(struct xdp_md *ctx)
{
    return count_and_pass();
}

SEC("xdp")
int gamma(struct xdp_md *ctx)
{
    return count_and_pass();
}

char LICENSE[] SEC("license") = "GPL";
