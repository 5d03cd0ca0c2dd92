internal import BpfmanServer

// The bpfman executable: the daemon (`bpfman serve`) and the command line share one binary.
await BpfmanCommand.runMain(argv: CommandLine.arguments)
