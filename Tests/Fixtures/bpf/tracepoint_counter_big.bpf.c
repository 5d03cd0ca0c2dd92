// Same map name as tracepoint_counter (`counter`) but 8 entries: a dependant that must not match the owner.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} counter SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_kill")
int count_kill_big(void *ctx)
{
    __u32 key = 0;
    __u64 *value = bpf_map_lookup_elem(&counter, &key);
    if (value)
        __sync_fetch_and_add(value, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
