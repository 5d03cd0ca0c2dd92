import TestSupport
import Testing

/// The one serialized parent of every test that touches bpffs, interfaces, libxdp or kernel objects.
///
/// Those resources are process-wide (and machine-wide), so each file adds its suites with
/// `extension KernelTests { @Suite struct ... }`; `.serialized` covers nested suites too.
@Suite(.serialized, .enabled(if: TestKernel.canUseBPF, "\(TestKernel.needsRootAndBPF)"))
struct KernelTests {}
