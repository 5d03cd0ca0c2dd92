// The kernel-B lane's proof (Tests/BpfmanEngineTests/Kernel/LaneKernelB.swift): three programs on the
// getpgid(2) path, each counting calls made by one process, whose tgid the test writes into `target`.
//   count_fentry  fentry on the syscall entry, __x64_sys_getpgid     -> counter[0]
//   count_kprobe  kprobe on the same function                         -> counter[1]
//   deny_getpgid  LSM hook task_getpgid (getpgid of a non-zero pid)   -> counter[2]; returns -EPERM
// Kernel A refuses to load fentry and LSM programs and has no kprobes; kernel B runs all three.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define LANE_EPERM 1

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 3);
    __type(key, __u32);
    __type(value, __u64);
} counter SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} target SEC(".maps");

static __always_inline int from_target(void)
{
    __u32 key = 0;
    __u32 *tgid = bpf_map_lookup_elem(&target, &key);
    return tgid && *tgid == (__u32)(bpf_get_current_pid_tgid() >> 32);
}

static __always_inline void bump(__u32 slot)
{
    __u64 *value = bpf_map_lookup_elem(&counter, &slot);
    if (value)
        __sync_fetch_and_add(value, 1);
}

SEC("fentry/__x64_sys_getpgid")
int count_fentry(unsigned long long *ctx)
{
    if (from_target())
        bump(0);
    return 0;
}

SEC("kprobe/__x64_sys_getpgid")
int count_kprobe(void *ctx)
{
    if (from_target())
        bump(1);
    return 0;
}

SEC("lsm/task_getpgid")
int deny_getpgid(unsigned long long *ctx)
{
    if (!from_target())
        return 0;
    bump(2);
    return -LANE_EPERM;
}

char LICENSE[] SEC("license") = "GPL";
