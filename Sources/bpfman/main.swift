internal import BpfmanEngine
internal import BpfmanImageFetch
internal import BpfmanServer

// The bpfman executable: the daemon (`bpfman serve`) and the command line, and two helpers the daemon starts as
// this same file under other names, so that one installed file is all bpfman needs. The name is looked at
// before anything else runs: the namespace helper must still be single-threaded when it calls setns.
switch CommandLine.arguments.first.map({ $0.split(separator: "/").last.map(String.init) ?? $0 }) {
case NamespaceHelper.name: NamespaceHelper.main(CommandLine.arguments)
case FetcherProcess.name: FetcherProcess.main()
default: await BpfmanCommand.runMain(argv: CommandLine.arguments)
}
