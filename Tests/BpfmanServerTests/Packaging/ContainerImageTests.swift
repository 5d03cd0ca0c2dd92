import Foundation
import TestSupport
import Testing

/// What `make image` puts in the image, against the sources: ldd finds the libraries the executables link, but
/// not those they open with dlopen, so scripts/oci-image.py lists those by name, and the list must match.
@Suite struct ContainerImageTests {
    @Test func everyLibraryTheSourcesOpenWithDlopenIsInTheImage() throws {
        let image = try ImageDescription.load()
        let listed = Set(try #require(image.raw["dlopened"] as? [String]))
        var opened: Set<String> = []
        let sources = Repository.path("Sources")
        let files = try #require(FileManager.default.enumerator(atPath: sources))
        while let file = files.nextObject() as? String {
            guard [".swift", ".h", ".c"].contains(where: file.hasSuffix) else { continue }
            let text = try String(contentsOfFile: sources + "/" + file, encoding: .utf8)
            for line in text.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                var rest = Substring(line)
                while let call = rest.range(of: "dlopen(\"") {
                    opened.insert(String(rest[call.upperBound...].prefix { $0 != "\"" }))
                    rest = rest[call.upperBound...]
                }
            }
        }
        // Equal, not just contained: a name no source opens any more is a library the image carries for nothing.
        #expect(opened == listed, "dlopen in Sources: \(opened.sorted()); oci-image.py's DLOPENED: \(listed.sorted())")
    }
}
