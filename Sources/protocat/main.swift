// protocat: binary protobuf <-> canonical JSON for bpfman's messages.
// Written by the Proto issue together with the generated types; this entry point reports that plainly.
internal import Foundation

FileHandle.standardError.write(Data("protocat: not available yet: the generated message types are missing\n".utf8))
exit(1)
