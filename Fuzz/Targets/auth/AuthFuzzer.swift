// `WWW-Authenticate` challenges from a registry (RFC 9110 §11.6.1). Input: the header's value.
//
// What must hold: a challenge that parses is Basic or Bearer with lowercase parameter names, and written back as a
// header (values quoted and escaped) it parses to the same challenge; only the first 8 KiB of a header is read.
internal import FuzzSupport

@testable internal import BpfmanImageFetch

private func render(_ challenge: AuthChallenge) -> String {
    let parameters = challenge.parameters.sorted { $0.key < $1.key }.map { name, value in
        // By scalar, not by Character: a backslash followed by a combining mark is one Character.
        var escaped = String.UnicodeScalarView()
        for scalar in value.unicodeScalars {
            if scalar == "\"" || scalar == "\\" { escaped.append("\\") }
            escaped.append(scalar)
        }
        return "\(name)=\"\(String(escaped))\""
    }
    return (challenge.scheme == "basic" ? "Basic " : "Bearer ") + parameters.joined(separator: ", ")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let header = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let challenge = AuthChallenge(header: header) else { return 0 }
    require(challenge.scheme == "basic" || challenge.scheme == "bearer", "scheme \(challenge.scheme)")
    for name in challenge.parameters.keys {
        require(!name.isEmpty && name == name.lowercased(), "parameter name \(name)")
    }
    let written = render(challenge)
    guard written.utf8.count <= 8192 else { return 0 }  // escaping made it longer than what is read
    guard let again = AuthChallenge(header: written) else { fail("\(written) does not parse") }
    require(again == challenge, "\(header) -> \(written) -> \(again)")
    return 0
}
