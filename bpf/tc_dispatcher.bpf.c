// bpfman's TC dispatcher: runs up to ten member programs in slot order on one interface direction,
// installed as a cls_bpf direct-action filter at priority 50 (SPEC §4.5).
//
// Layout contract: main program `tc_dispatcher` in section "tc"; global never-inlined slots prog0..prog9
// returning 30 until replaced by freplace links, plus `compat_test`; one read-only config `CONFIG`
// (member count, per-slot proceed_on masks, run priorities). A TC verdict `ret` continues the chain when
// bit (ret + 1) of the slot's mask is set, so TC_ACT_UNSPEC (-1) maps to bit 0.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define SLOT_COUNT 10
#define SLOT_EMPTY_RETURN 30
#define VERDICT_OK 0
#define VERDICT_UNSPEC (-1)

struct bpfman_tc_config {
    __u8 num_progs_enabled;
    __u32 chain_call_actions[SLOT_COUNT];
    __u32 run_prios[SLOT_COUNT];
};

static volatile const struct bpfman_tc_config CONFIG = {};

#define SLOT_FUNCTION(name)                                                  \
    __attribute__((noinline)) int name(struct __sk_buff *skb)                \
    {                                                                        \
        volatile int verdict = SLOT_EMPTY_RETURN;                            \
        if (!skb)                                                            \
            return VERDICT_UNSPEC;                                           \
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

#define RUN_SLOT(i)                                                          \
    if (CONFIG.num_progs_enabled <= i)                                       \
        return VERDICT_OK;                                                   \
    verdict = prog##i(skb);                                                  \
    if (verdict < -1 || verdict > 30 ||                                      \
        !((1U << (verdict + 1)) & CONFIG.chain_call_actions[i]))             \
        return verdict;

SEC("tc")
int tc_dispatcher(struct __sk_buff *skb)
{
    int verdict;

    // A real packet never has ifindex 0, but the verifier cannot know that, so this call keeps
    // `compat_test` in the loaded program (the config is constant to the verifier, so anything only
    // reachable through it is removed as dead code). The freplace probe and EXT loads target it.
    if (skb->ifindex == 0)
        return compat_test(skb);

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
    return VERDICT_OK;
}

// Loaded only by the start-up probe, as an EXT program replacing `compat_test`.
SEC("tc")
int probe_ok(struct __sk_buff *skb)
{
    return VERDICT_OK;
}

char LICENSE[] SEC("license") = "GPL";
