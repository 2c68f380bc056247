import Engine
import Foundation
import HiFCCore

/// One batch of a block transfer trace (the JSONL lines `TransferTraceRecorder` writes, or a
/// synthetic trace in the same format).
struct BlockTraceEvent: Sendable, Codable {
    /// What a batch does.
    enum Operation: String, Sendable, Codable {
        case write, read, delete
    }

    /// Seconds from the start of the trace to the batch's issue.
    var t: Double
    /// The batch's kind.
    var op: Operation
    /// The engine replica that issued it.
    var replica: Int
    /// Its blocks.
    var keys: [BlockKey]
    /// Bytes of its blocks together (equal shares).
    var bytes: Int
    /// How long it took where it was recorded (absent in synthetic traces).
    var seconds: Double?

    /// Bytes of each block.
    var blockBytes: Int { keys.isEmpty ? 0 : bytes / keys.count }

    private enum CodingKeys: String, CodingKey {
        case t, op, replica, keys, bytes, seconds
    }

    init(t: Double, op: Operation, replica: Int = 0, keys: [BlockKey], bytes: Int, seconds: Double? = nil) {
        self.t = t
        self.op = op
        self.replica = replica
        self.keys = keys
        self.bytes = bytes
        self.seconds = seconds
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        t = try c.decode(Double.self, forKey: .t)
        op = try c.decode(Operation.self, forKey: .op)
        replica = try c.decodeIfPresent(Int.self, forKey: .replica) ?? 0
        bytes = try c.decode(Int.self, forKey: .bytes)
        seconds = try c.decodeIfPresent(Double.self, forKey: .seconds)
        keys = try c.decode([String].self, forKey: .keys).map { text in
            guard let key = BlockKey(traceText: text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .keys, in: c, debugDescription: "'\(text)' is not a block key (seqS/blockB or prefix:<32 hex digits>)")
            }
            return key
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(t, forKey: .t)
        try c.encode(op, forKey: .op)
        try c.encode(replica, forKey: .replica)
        try c.encode(keys.map(\.description), forKey: .keys)
        try c.encode(bytes, forKey: .bytes)
        try c.encodeIfPresent(seconds, forKey: .seconds)
    }
}

/// A whole trace, in issue order.
struct BlockTrace: Sendable {
    var events: [BlockTraceEvent]

    /// Why a trace file cannot be used.
    struct ReadError: Error, CustomStringConvertible {
        let description: String
    }

    /// Reads a JSONL trace; a bad line is an error naming the file and line.
    init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw ReadError(description: "cannot read trace file \(path)") }
        let decoder = JSONDecoder()
        var events: [BlockTraceEvent] = []
        for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces)
            guard !text.isEmpty else { continue }
            do { events.append(try decoder.decode(BlockTraceEvent.self, from: Data(text.utf8))) } catch {
                throw ReadError(description: "\(path) line \(number + 1): \(error)")
            }
        }
        guard !events.isEmpty else { throw ReadError(description: "trace file \(path) holds no event") }
        self.events = events.enumerated().sorted { ($0.element.t, $0.offset) < ($1.element.t, $1.offset) }.map(\.element)
    }

    init(events: [BlockTraceEvent]) { self.events = events }

    /// Writes the trace as JSONL.
    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var text = ""
        for event in events { text += String(decoding: try encoder.encode(event), as: UTF8.self) + "\n" }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Bytes read, written; batches read; distinct blocks.
    var summary: String {
        let reads = events.filter { $0.op == .read }
        let writes = events.filter { $0.op == .write }
        let blocks = Set(events.flatMap(\.keys)).count
        let readBytes = reads.reduce(0) { $0 + $1.bytes }
        let writeBytes = writes.reduce(0) { $0 + $1.bytes }
        return
            "\(events.count) batches over \(String(format: "%.1f", (events.last?.t ?? 0) - (events.first?.t ?? 0))) s: \(reads.count) reads (\(ByteSize(Int64(readBytes)))), \(writes.count) writes (\(ByteSize(Int64(writeBytes)))), \(blocks) distinct blocks"
    }
}
