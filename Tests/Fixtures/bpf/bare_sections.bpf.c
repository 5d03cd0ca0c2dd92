// One program per ELF section spelling of SPEC §4.2, bare (as objects written for bpfman use them: the attach
// point comes at attach time) and followed by `/…`. Each program adds one to its own slot of `hits`, so a test
// can tell which program ran. The sleepable spellings (`*.s`) call bpf_copy_from_user, a helper the verifier
// allows in sleepable programs only: such a program loads only if the section's sleepable flag reached the
// kernel. `not_for_bpfman` sits in a section of no bpfman family (a socket filter), for the mismatch message.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

enum slot {
    TRACEPOINT_BARE, TRACEPOINT_SLASH, TP_BARE, TP_SLASH,
    KPROBE_BARE, KPROBE_SLASH, KRETPROBE_BARE, KRETPROBE_SLASH,
    UPROBE_BARE, UPROBE_SLASH, UPROBE_S_BARE, UPROBE_S_SLASH,
    URETPROBE_BARE, URETPROBE_SLASH, URETPROBE_S_BARE, URETPROBE_S_SLASH,
    XDP_BARE, XDP_SLASH, XDP_FRAGS_BARE, XDP_FRAGS_SLASH,
    CLASSIFIER_BARE, CLASSIFIER_SLASH, TC_BARE, TC_SLASH, TCX_BARE, TCX_SLASH,
    FENTRY_BARE, FENTRY_SLASH, FENTRY_S_BARE, FENTRY_S_SLASH,
    FEXIT_BARE, FEXIT_SLASH, FEXIT_S_BARE, FEXIT_S_SLASH,
    LSM_BARE, LSM_SLASH, LSM_S_BARE, LSM_S_SLASH,
    SLOTS,
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, SLOTS);
    __type(key, __u32);
    __type(value, __u64);
} hits SEC(".maps");

static __always_inline void bump(__u32 key)
{
    __u64 *value = bpf_map_lookup_elem(&hits, &key);
    if (value)
        __sync_fetch_and_add(value, 1);
}

// A sleepable-only helper: reading one byte from user address 0 fails at run time (-EFAULT), which is fine.
static __always_inline void sleepable_only(void)
{
    char byte;
    bpf_copy_from_user(&byte, 1, (void *)0);
}

#define COUNTER(section, name, slot) \
    SEC(section) int name(void *ctx) { bump(slot); return 0; }
#define SLEEPABLE_COUNTER(section, name, slot) \
    SEC(section) int name(void *ctx) { sleepable_only(); bump(slot); return 0; }

COUNTER("tracepoint", tracepoint_bare, TRACEPOINT_BARE)
COUNTER("tracepoint/syscalls/sys_enter_kill", tracepoint_slash, TRACEPOINT_SLASH)
COUNTER("tp", tp_bare, TP_BARE)
COUNTER("tp/syscalls/sys_enter_kill", tp_slash, TP_SLASH)

COUNTER("kprobe", kprobe_bare, KPROBE_BARE)
COUNTER("kprobe/do_sys_openat2", kprobe_slash, KPROBE_SLASH)
COUNTER("kretprobe", kretprobe_bare, KRETPROBE_BARE)
COUNTER("kretprobe/do_sys_openat2", kretprobe_slash, KRETPROBE_SLASH)

COUNTER("uprobe", uprobe_bare, UPROBE_BARE)
COUNTER("uprobe/anything", uprobe_slash, UPROBE_SLASH)
SLEEPABLE_COUNTER("uprobe.s", uprobe_s_bare, UPROBE_S_BARE)
SLEEPABLE_COUNTER("uprobe.s/anything", uprobe_s_slash, UPROBE_S_SLASH)
COUNTER("uretprobe", uretprobe_bare, URETPROBE_BARE)
COUNTER("uretprobe/anything", uretprobe_slash, URETPROBE_SLASH)
SLEEPABLE_COUNTER("uretprobe.s", uretprobe_s_bare, URETPROBE_S_BARE)
SLEEPABLE_COUNTER("uretprobe.s/anything", uretprobe_s_slash, URETPROBE_S_SLASH)

// XDP and TC programs keep their context types: in dispatcher mode they replace a dispatcher's function,
// whose BTF prototype must match.
#define XDP_COUNTER(section, name, slot) \
    SEC(section) int name(struct xdp_md *ctx) { bump(slot); return XDP_PASS; }
#define TC_COUNTER(section, name, slot) \
    SEC(section) int name(struct __sk_buff *skb) { bump(slot); return 0; }

XDP_COUNTER("xdp", xdp_bare, XDP_BARE)
XDP_COUNTER("xdp/anything", xdp_slash, XDP_SLASH)
XDP_COUNTER("xdp.frags", xdp_frags_bare, XDP_FRAGS_BARE)
XDP_COUNTER("xdp.frags/anything", xdp_frags_slash, XDP_FRAGS_SLASH)

TC_COUNTER("classifier", classifier_bare, CLASSIFIER_BARE)
TC_COUNTER("classifier/anything", classifier_slash, CLASSIFIER_SLASH)
TC_COUNTER("tc", tc_bare, TC_BARE)
TC_COUNTER("tc/ingress", tc_slash, TC_SLASH)
TC_COUNTER("tcx", tcx_bare, TCX_BARE)
TC_COUNTER("tcx/egress", tcx_slash, TCX_SLASH)

// Targets come with the Load (fn_name / hook_name); the one after the `/` is not read.
COUNTER("fentry", fentry_bare, FENTRY_BARE)
COUNTER("fentry/do_unlinkat", fentry_slash, FENTRY_SLASH)
SLEEPABLE_COUNTER("fentry.s", fentry_s_bare, FENTRY_S_BARE)
SLEEPABLE_COUNTER("fentry.s/do_unlinkat", fentry_s_slash, FENTRY_S_SLASH)
COUNTER("fexit", fexit_bare, FEXIT_BARE)
COUNTER("fexit/do_unlinkat", fexit_slash, FEXIT_SLASH)
SLEEPABLE_COUNTER("fexit.s", fexit_s_bare, FEXIT_S_BARE)
SLEEPABLE_COUNTER("fexit.s/do_unlinkat", fexit_s_slash, FEXIT_S_SLASH)
COUNTER("lsm", lsm_bare, LSM_BARE)
COUNTER("lsm/file_open", lsm_slash, LSM_SLASH)
SLEEPABLE_COUNTER("lsm.s", lsm_s_bare, LSM_S_BARE)
SLEEPABLE_COUNTER("lsm.s/file_open", lsm_s_slash, LSM_S_SLASH)

SEC("socket") int not_for_bpfman(struct __sk_buff *skb) { return 0; }

char LICENSE[] SEC("license") = "GPL";
