/// An image url as SPEC §8.2 reads it: a registry reference normalized the way Docker does, or one of the
/// air-gapped forms `oci:<dir>[:<tag>]` and `oci-archive:<file>[:<tag>]`.
package enum ImageReference: Sendable, Hashable, CustomStringConvertible {
    case registry(RegistryReference)
    /// An OCI image layout directory on this host; `tag` names the manifest by its `ref.name` annotation.
    case layout(directory: String, tag: String?)
    /// An OCI image layout packed as a tar file on this host.
    case archive(file: String, tag: String?)

    /// Parses `url`.
    /// - Throws: INVALID_ARGUMENT `invalid image reference "<url>": <reason>`.
    package init(parsing url: String) throws(ImageError) {
        func invalid(_ reason: String) -> ImageError {
            .invalidArgument("invalid image reference \"\(url)\": \(reason)")
        }
        if url.hasPrefix("oci-archive:") || url.hasPrefix("oci:") {
            let archive = url.hasPrefix("oci-archive:")
            let rest = String(url.dropFirst(archive ? 12 : 4))
            // The tag follows the last ':' after the last '/', so directories may contain ':'.
            var path = rest
            var tag: String?
            let lastSlash = rest.lastIndex(of: "/") ?? rest.startIndex
            if let colon = rest[lastSlash...].lastIndex(of: ":") {
                path = String(rest[..<colon])
                tag = String(rest[rest.index(after: colon)...])
                guard let tag, RegistryReference.isValidTag(tag) else { throw invalid("bad tag") }
            }
            guard path.hasPrefix("/") else {
                throw invalid("the path of an \(archive ? "oci-archive" : "oci") image must be absolute")
            }
            guard !path.split(separator: "/").contains("..") else { throw invalid("the path may not contain ..") }
            self = archive ? .archive(file: path, tag: tag) : .layout(directory: path, tag: tag)
            return
        }
        do {
            self = .registry(try RegistryReference(parsing: url))
        } catch {
            throw invalid(error.reason)
        }
    }

    /// The cache key's text: `docker.io/library/x:latest` for `x`, `oci:/dir:tag` for a layout.
    package var normalized: String {
        switch self {
        case .registry(let reference): reference.normalized
        case .layout(let directory, let tag): "oci:" + directory + (tag.map { ":" + $0 } ?? "")
        case .archive(let file, let tag): "oci-archive:" + file + (tag.map { ":" + $0 } ?? "")
        }
    }

    package var description: String { normalized }
}

/// `[registry/]repository[:tag][@sha256:<hex>]` with Docker's defaults (SPEC §8.2).
package struct RegistryReference: Sendable, Hashable {
    /// As written, or `docker.io` by default; `host` is where the API is.
    package var registry: String
    package var repository: String
    package var tag: String?
    /// `sha256:<64 hex>`; wins over `tag` when both are given.
    package var digest: String?

    struct Malformed: Error {
        var reason: String
    }

    init(parsing text: String) throws(Malformed) {
        guard !text.isEmpty else { throw Malformed(reason: "empty") }
        guard text.utf8.count <= 512 else { throw Malformed(reason: "longer than 512 bytes") }
        guard !text.contains(where: { $0.isWhitespace || $0.asciiValue == nil }) else {
            throw Malformed(reason: "contains white space or non-ASCII characters")
        }
        var rest = Substring(text)
        if let at = rest.firstIndex(of: "@") {
            let digest = String(rest[rest.index(after: at)...])
            guard digest.hasPrefix("sha256:"), digest.utf8.count == 71,
                digest.dropFirst(7).allSatisfy({ $0.isHexDigit && !$0.isUppercase })
            else { throw Malformed(reason: "a digest must be sha256: followed by 64 lower-case hex digits") }
            self.digest = digest
            rest = rest[..<at]
        }
        // A tag follows the last ':' that comes after the last '/' (a registry's port comes before it).
        let lastSlash = rest.lastIndex(of: "/") ?? rest.startIndex
        if let colon = rest[lastSlash...].lastIndex(of: ":") {
            let tag = String(rest[rest.index(after: colon)...])
            guard Self.isValidTag(tag) else { throw Malformed(reason: "bad tag \"\(tag)\"") }
            self.tag = tag
            rest = rest[..<colon]
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard components.allSatisfy({ !$0.isEmpty }) else { throw Malformed(reason: "empty path component") }
        if components.count > 1,
            components[0].contains(".") || components[0].contains(":") || components[0] == "localhost"
        {
            registry = components.removeFirst()
            guard Self.isValidRegistry(registry) else { throw Malformed(reason: "bad registry \"\(registry)\"") }
        } else {
            registry = "docker.io"
        }
        if registry == "index.docker.io" || registry == "registry-1.docker.io" { registry = "docker.io" }
        if registry == "docker.io" && components.count == 1 { components.insert("library", at: 0) }
        for component in components where !Self.isValidPathComponent(component) {
            throw Malformed(
                reason: "bad repository component \"\(component)\" (lower-case letters, digits and . _ - only)"
            )
        }
        repository = components.joined(separator: "/")
        if tag == nil && digest == nil { tag = "latest" }
    }

    /// Where the registry's API answers: Docker Hub's API host differs from its name.
    package var host: String { registry == "docker.io" ? "registry-1.docker.io" : registry }

    /// What a manifest is fetched by: the digest if given, else the tag.
    package var manifestReference: String { digest ?? tag ?? "latest" }

    /// `registry/repository@digest`, or `registry/repository:tag`.
    package var normalized: String {
        "\(registry)/\(repository)" + (digest.map { "@" + $0 } ?? ":" + (tag ?? "latest"))
    }

    /// True for `localhost`, `127.0.0.0/8` and `[::1]` (with or without a port): such registries may speak plain HTTP.
    package var isLoopback: Bool {
        var name = Substring(registry)
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return false }
            return name[name.index(after: name.startIndex)..<close] == "::1"
        }
        if let colon = name.lastIndex(of: ":") { name = name[..<colon] }
        if name == "localhost" { return true }
        let octets = name.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    static func isValidTag(_ tag: String) -> Bool {
        guard let first = tag.first, tag.utf8.count <= 128, first.isLetter || first.isNumber || first == "_" else {
            return false
        }
        return tag.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }
    }

    /// `[a-z0-9]+` runs joined by `.`, `_`, `__` or runs of `-`, as the distribution spec allows.
    static func isValidPathComponent(_ component: String) -> Bool {
        let bytes = Array(component.utf8)
        func alnum(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }
        guard let first = bytes.first, let last = bytes.last, alnum(first), alnum(last) else { return false }
        var index = 0
        while index < bytes.count {
            if alnum(bytes[index]) {
                index += 1
                continue
            }
            // A separator: ".", "_", "__" or one or more "-", followed by an alphanumeric.
            var end = index
            switch bytes[index] {
            case UInt8(ascii: "."): end = index + 1
            case UInt8(ascii: "_"):
                end = index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "_") ? index + 2 : index + 1
            case UInt8(ascii: "-"): while end < bytes.count && bytes[end] == UInt8(ascii: "-") { end += 1 }
            default: return false
            }
            guard end < bytes.count, alnum(bytes[end]) else { return false }
            index = end
        }
        return true
    }

    /// A host name or IPv4 address with an optional port, or a bracketed IPv6 address with an optional port.
    static func isValidRegistry(_ registry: String) -> Bool {
        var host = Substring(registry)
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            let address = host[host.index(after: host.startIndex)..<close]
            guard !address.isEmpty, address.allSatisfy({ $0.isHexDigit || $0 == ":" }) else { return false }
            host = host[host.index(after: close)...]
            if host.isEmpty { return true }
            guard host.hasPrefix(":") else { return false }
            return UInt16(host.dropFirst()) != nil
        }
        if let colon = host.lastIndex(of: ":") {
            guard let port = UInt16(host[host.index(after: colon)...]), port > 0 else { return false }
            host = host[..<colon]
        }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        return !host.isEmpty && host.utf8.count <= 253
            && labels.allSatisfy { label in
                !label.isEmpty && label.count <= 63 && label.first != "-" && label.last != "-"
                    && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
            }
    }
}

extension RegistryReference {
    /// A reference used only to ask `isLoopback` of a host name.
    package init(loopbackProbe host: String) {
        registry = host
        repository = ""
    }
}
