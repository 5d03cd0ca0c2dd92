// TC members for dispatcher and native-mode tests. Every program counts the packets it sees in slot 0
// of its own object's `tc_hits` map, then returns a fixed TC action.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} tc_hits SEC(".maps");

static __always_inline void count_packet(void)
{
    __u32 key = 0;
    __u64 *value = bpf_map_lookup_elem(&tc_hits, &key);
    if (value)
        __sync_fetch_and_add(value, 1);
}

// TC_ACT_UNSPEC: the kernel moves on to the next filter.
SEC("tc")
int tc_count_unspec(struct __sk_buff *skb)
{
    count_packet();
    return -1;
}

// TC_ACT_OK
SEC("tc")
int tc_count_ok(struct __sk_buff *skb)
{
    count_packet();
    return 0;
}

// TC_ACT_SHOT
SEC("tc")
int tc_count_shot(struct __sk_buff *skb)
{
    count_packet();
    return 2;
}

// TC_ACT_PIPE
SEC("tc")
int tc_count_pipe(struct __sk_buff *skb)
{
    count_packet();
    return 3;
}

char LICENSE[] SEC("license") = "GPL";
