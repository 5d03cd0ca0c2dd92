// bpfman's XDP dispatcher: runs up to ten member programs in slot order on one interface.
//
// Layout contract (SPEC §4.4), shared with libxdp so that `xdp-loader status` recognises it:
//  - main program `xdp_dispatcher` in section "xdp";
//  - ten global, never-inlined slot functions prog0..prog9 that return 31 until an freplace link replaces
//    them with a member program, plus `compat_test` for the start-up freplace probe;
//  - one read-only config (.rodata holds nothing else): magic 236, version 2, member count, frags flag,
//    per-slot proceed_on masks, run priorities and flags;
//  - a BTF-only `xdp_metadata` section announcing dispatcher_version 2.
// The daemon fills the config with bpf_map__set_initial_value before each load; a new revision is a new
// load. `probe_pass` is never loaded as part of the dispatcher: the probe loads it as an EXT program.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define SLOT_COUNT 10
#define SLOT_EMPTY_RETURN 31

struct bpfman_xdp_config {
    __u8 magic;
    __u8 dispatcher_version;
    __u8 num_progs_enabled;
    __u8 is_xdp_frags;
    __u32 chain_call_actions[SLOT_COUNT];
    __u32 run_prios[SLOT_COUNT];
    __u32 program_flags[SLOT_COUNT];
};

// Filled in by the loader; `volatile` keeps clang from folding the zero initialiser into the code.
static volatile const struct bpfman_xdp_config conf = {};

// Announces the layout version to libxdp (a pointer-to-array type whose length is the version).
int (*dispatcher_version)[2] SEC("xdp_metadata");

// An empty slot. The volatile local and the NULL check keep the compiler from assuming the result, so
// the call sites stay real calls that freplace can redirect.
#define SLOT_FUNCTION(name)                                                  \
    __attribute__((noinline)) int name(struct xdp_md *ctx)                   \
    {                                                                        \
        volatile int verdict = SLOT_EMPTY_RETURN;                            \
        if (!ctx)                                                            \
            return XDP_ABORTED;                                              \
        return verdict;                                                      \
    }

SLOT_FUNCTION(prog0)
SLOT_FUNCTION(prog1)
SLOT_FUNCTION(prog2)
SLOT_FUNCTION(prog3)
SLOT_FUNCTION(prog4)
SLOT_FUNCTION(prog5)
SLOT_FUNCTION(prog6)
SLOT_FUNCTION(prog7)
SLOT_FUNCTION(prog8)
SLOT_FUNCTION(prog9)
SLOT_FUNCTION(compat_test)

// Runs slot i if enabled; returns its verdict unless the verdict is in the slot's proceed_on mask.
#define RUN_SLOT(i)                                                          \
    if (conf.num_progs_enabled <= i)                                         \
        return XDP_PASS;                                                     \
    verdict = prog##i(ctx);                                                  \
    if (verdict > 31 || !((1U << verdict) & conf.chain_call_actions[i]))     \
        return verdict;

SEC("xdp")
int xdp_dispatcher(struct xdp_md *ctx)
{
    __u32 verdict;

    // A real packet never has ifindex 0, but the verifier cannot know that, so this call keeps
    // `compat_test` in the loaded program (the config is constant to the verifier, so anything only
    // reachable through it is removed as dead code). The freplace probe and EXT loads target it.
    if (ctx->ingress_ifindex == 0)
        return compat_test(ctx);

    RUN_SLOT(0)
    RUN_SLOT(1)
    RUN_SLOT(2)
    RUN_SLOT(3)
    RUN_SLOT(4)
    RUN_SLOT(5)
    RUN_SLOT(6)
    RUN_SLOT(7)
    RUN_SLOT(8)
    RUN_SLOT(9)
    return XDP_PASS;
}

// Loaded only by the start-up probe, as an EXT program replacing `compat_test`.
SEC("xdp")
int probe_pass(struct xdp_md *ctx)
{
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
