// Two maps for the CSI tests: every getppid(2) adds one to slot 0 of `csi_counts` and records the caller's
// tgid in `csi_last_pid`, so a pod that opens the maps through its volume sees the counter move.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} csi_counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u32);
} csi_last_pid SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int csi_count(void *ctx)
{
    __u32 key = 0;
    __u64 *value = bpf_map_lookup_elem(&csi_counts, &key);
    if (value)
        __sync_fetch_and_add(value, 1);
    __u32 pid = bpf_get_current_pid_tgid() >> 32;
    bpf_map_update_elem(&csi_last_pid, &key, &pid, BPF_ANY);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
