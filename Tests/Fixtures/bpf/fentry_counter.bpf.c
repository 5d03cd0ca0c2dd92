// fentry (slot 0), fexit (slot 1) and LSM file_open (slot 2) counters. Targets are set at load by the engine.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 3);
    __type(key, __u32);
    __type(value, __u64);
} traced SEC(".maps");

static __always_inline void bump(__u32 key)
{
    __u64 *value = bpf_map_lookup_elem(&traced, &key);
    if (value)
        __sync_fetch_and_add(value, 1);
}

SEC("fentry/do_unlinkat")
int fentry_hit(void *ctx) { bump(0); return 0; }

SEC("fexit/do_unlinkat")
int fexit_hit(void *ctx) { bump(1); return 0; }

SEC("lsm/file_open")
int lsm_hit(void *ctx) { bump(2); return 0; }

char LICENSE[] SEC("license") = "GPL";
