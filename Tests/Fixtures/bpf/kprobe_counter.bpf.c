// kprobe (slot 0) and kretprobe (slot 1) counters for whatever kernel function they are attached to.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} hits SEC(".maps");

static __always_inline void bump(__u32 key)
{
    __u64 *value = bpf_map_lookup_elem(&hits, &key);
    if (value)
        __sync_fetch_and_add(value, 1);
}

SEC("kprobe/do_sys_openat2")
int kprobe_hit(void *ctx) { bump(0); return 0; }

SEC("kretprobe/do_sys_openat2")
int kretprobe_hit(void *ctx) { bump(1); return 0; }

char LICENSE[] SEC("license") = "GPL";
