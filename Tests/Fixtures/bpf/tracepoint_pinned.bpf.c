// A tracepoint counter whose map is pinned by name (LIBBPF_PIN_BY_NAME), so two loads share it.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} eng_pinned_counter SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_kill")
int pinned_kill(void *ctx)
{
    __u32 key = 0;
    __u64 *value = bpf_map_lookup_elem(&eng_pinned_counter, &key);
    if (value)
        __sync_fetch_and_add(value, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
