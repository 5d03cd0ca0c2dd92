// One program the verifier rejects (calls a helper id that does not exist) next to a good one.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static long (*no_such_helper)(void) = (void *)9999;

SEC("tracepoint/syscalls/sys_enter_kill")
int rejected(void *ctx) { return (int)no_such_helper(); }

SEC("tracepoint/syscalls/sys_enter_kill")
int accepted(void *ctx) { return 0; }

char LICENSE[] SEC("license") = "GPL";
