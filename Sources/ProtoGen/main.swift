// ProtoGen: reads proto/*.proto and writes Sources/Proto/Generated/*.swift.
// The generator is written by the Proto issue; this entry point reports that plainly.
internal import Foundation

FileHandle.standardError.write(Data("protogen: the generator is not written yet\n".utf8))
exit(1)
