internal import ArgumentParser
internal import H2Transport
internal import Proto

/// A dispatcher's type as upstream names it: `xdp`, `tc-ingress` or `tc-egress`.
func dispatcherType(_ d: Bpfman_Ext_V1_DispatcherInfo) -> String {
    d.kind == "tc" ? "tc-\(d.direction)" : d.kind
}

extension BpfmanCommand {
    /// `bpfman dispatcher list|get` (Go-era tree, SPEC §9.4): the XDP and TC dispatchers bpfman built.
    struct DispatcherCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dispatcher",
            abstract: "Show the XDP and TC dispatchers.",
            subcommands: [List.self, Get.self],
            defaultSubcommand: List.self
        )

        static func dispatchers(_ backend: Backend) async throws(ClientError) -> [Bpfman_Ext_V1_DispatcherInfo] {
            try await backend.call(
                Bpfman_Ext_V1_Inspect.Method.listDispatchers.path,
                Bpfman_Ext_V1_ListDispatchersRequest(),
                Bpfman_Ext_V1_ListDispatchersResponse.self
            ).dispatchers
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List dispatchers.")
            @Option(name: .customLong("type"), help: "xdp, tc-ingress or tc-egress.") var type: String?
            @Option(help: "Only this network namespace (inode number).") var nsid: UInt64?
            @Option(help: "Only this interface index.") var ifindex: UInt32?
            @OptionGroup var options: GoClientOptions

            func validate() throws {
                if let type, !["xdp", "tc-ingress", "tc-egress"].contains(type) {
                    throw ValidationError("--type must be xdp, tc-ingress or tc-egress, got \"\(type)\"")
                }
            }

            func run() async throws {
                let found = try await DispatcherCommand.dispatchers(try await options.connect()).filter { d in
                    (type == nil || dispatcherType(d) == type) && (nsid == nil || d.nsid == nsid)
                        && (ifindex == nil || d.ifindex == ifindex)
                }
                switch options.output {
                case .json: printJSON(jsonObject([("dispatchers", jsonArray(found.map { json($0) }))]))
                case .text:
                    let rows = found.map { d in
                        [
                            dispatcherType(d), "\(d.nsid)", "\(d.ifindex)", "\(d.revision)", "\(d.programID)", "-",
                            d.kind == "tc" ? "\(d.tcPriority)" : "-",
                            d.kind == "tc" ? "0x" + String(d.tcHandle, radix: 16) : "-", "\(d.members.count)",
                            d.netns.isEmpty ? "-" : d.netns,
                        ]
                    }
                    let header = [
                        "TYPE", "NSID", "IFINDEX", "REVISION", "PROGRAM ID", "KERNEL LINK ID", "PRIORITY", "HANDLE",
                        "MEMBERS", "NETNS",
                    ]
                    if let text = goTable(header, rows) { emit(text) }
                }
            }
        }

        struct Get: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show one dispatcher and its members.")
            @Argument(help: "xdp, tc-ingress or tc-egress.") var type: String
            @Argument(help: "The network namespace (inode number).") var nsid: UInt64
            @Argument(help: "The interface index.") var ifindex: UInt32
            @OptionGroup var options: GoClientOptions

            func run() async throws {
                let all = try await DispatcherCommand.dispatchers(try await options.connect())
                guard
                    let d = all.first(where: { dispatcherType($0) == type && $0.nsid == nsid && $0.ifindex == ifindex })
                else {
                    throw ClientError(
                        status: .init(.notFound, "no \(type) dispatcher for nsid \(nsid) ifindex \(ifindex)")
                    )
                }
                switch options.output {
                case .json: printJSON(json(d))
                case .text:
                    var header: [DetailRow] = [
                        .field("Revision", "\(d.revision)"), .field("Program ID", "\(d.programID)"),
                    ]
                    if d.kind == "tc" {
                        header.append(.field("Priority", "\(d.tcPriority)"))
                        header.append(.field("Filter Handle", "0x" + String(d.tcHandle, radix: 16)))
                    }
                    var lines = ["Dispatcher: \(type) nsid=\(nsid) ifindex=\(ifindex)"] + renderDetail(header)
                    let members = d.members.sorted { $0.position < $1.position }
                    lines.append("")
                    lines.append("Members (\(members.count)/10):")
                    if members.isEmpty {
                        lines.append("  (none)")
                    } else {
                        let rows = members.map { m in
                            [
                                "\(m.position)", "\(m.priority)", "\(m.programID)", m.programName, "\(m.linkID)",
                                "<none>", proceedOnMaskText(m.proceedOnMask, xdp: d.kind == "xdp"),
                            ]
                        }
                        let text = table(
                            [
                                "POS", "PRIORITY", "PROGRAM ID", "FUNCTION NAME", "LINK ID", "KERNEL LINK ID",
                                "PROCEED ON",
                            ],
                            rows
                        )
                        lines += text.split(separator: "\n").map { "  " + $0 }
                    }
                    emit(lines.joined(separator: "\n"))
                }
            }
        }
    }
}

/// A proceed-on mask (SPEC §4.8) as action names.
func proceedOnMaskText(_ mask: UInt32, xdp: Bool) -> String {
    guard mask != 0 else { return "None" }
    var codes: [Int32] = []
    for bit in 0..<32 where mask & (1 << UInt32(bit)) != 0 {
        if xdp {
            codes.append(Int32(bit))
        } else {
            codes.append(bit == 31 ? 30 : Int32(bit) - 1)
        }
    }
    return proceedOnText(codes, xdp: xdp)
}
