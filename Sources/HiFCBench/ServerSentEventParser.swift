/// Splits a server-sent event stream into the `data` of its events, fed bytes as they arrive
/// (an event may span reads, and one read may hold several events).
///
/// Events end at a blank line (`\n\n`, `\r\n\r\n` or `\r\r`); each event's `data:` lines are
/// joined with newlines, other fields (`event:`, `id:`, comments) are skipped, as the SSE
/// specification says.
public struct ServerSentEventParser: Sendable {
    private var line: [UInt8] = []
    private var data: [String] = []
    private var lastWasCR = false

    public init() {}

    /// The data of each event that `bytes` completes.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [String] {
        var events: [String] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n"), lastWasCR {
                // The \n of a \r\n: the line already ended at the \r.
                lastWasCR = false
                continue
            }
            lastWasCR = byte == UInt8(ascii: "\r")
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                if line.isEmpty {
                    if !data.isEmpty { events.append(data.joined(separator: "\n")) }
                    data.removeAll()
                } else {
                    takeLine()
                }
            } else {
                line.append(byte)
            }
        }
        return events
    }

    private mutating func takeLine() {
        defer { line.removeAll(keepingCapacity: true) }
        guard line.starts(with: Self.dataField) else { return }
        var value = line.dropFirst(Self.dataField.count)
        if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        data.append(String(decoding: value, as: UTF8.self))
    }

    private static let dataField = Array("data:".utf8)
}
