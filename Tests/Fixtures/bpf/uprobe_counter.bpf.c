// Counts calls (uprobe, slot 0) and returns (uretprobe, slot 1) of whatever function it is attached to.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} calls SEC(".maps");

static __always_inline void bump(__u32 key)
{
    __u64 *value = bpf_map_lookup_elem(&calls, &key);
    if (value)
        __sync_fetch_and_add(value, 1);
}

SEC("uprobe/target")
int count_call(void *ctx) { bump(0); return 0; }

SEC("uretprobe/target")
int count_return(void *ctx) { bump(1); return 0; }

char LICENSE[] SEC("license") = "GPL";
