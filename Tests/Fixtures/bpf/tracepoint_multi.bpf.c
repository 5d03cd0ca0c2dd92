// Three programs in one object sharing one map and global data: two tracepoints and a uprobe.
// `increment` (.rodata), `bias` (.data) and `seen` (.bss) are global-data targets.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} shared_counts SEC(".maps");

volatile const __u32 increment = 1;
volatile __u64 bias = 0;
volatile __u32 seen;

static __always_inline void bump(__u32 key)
{
    __u64 *value = bpf_map_lookup_elem(&shared_counts, &key);
    if (value)
        __sync_fetch_and_add(value, increment + bias);
    seen = 1;
}

SEC("tracepoint/syscalls/sys_enter_kill")
int multi_kill(void *ctx) { bump(0); return 0; }

SEC("tracepoint/syscalls/sys_enter_getppid")
int multi_getppid(void *ctx) { bump(1); return 0; }

SEC("uprobe/multi")
int multi_uprobe(void *ctx) { bump(2); return 0; }

char LICENSE[] SEC("license") = "GPL";
