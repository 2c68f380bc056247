import Foundation
import HiFCCore

/// A synthetic prefix-sharing trace (`bench placement --synthesize`), for when no recorded prefix
/// cache trace exists: requests arrive at random (Poisson) and each starts from one of a few
/// shared prompt prefixes (system prompts, documents), picked by a Zipf law, so a few prefixes are
/// read by most requests. The first request of a prefix writes the prefix's blocks in one batch
/// (a prefix save); each later one reads them in one batch (a prefix load). A share of requests
/// is also preempted: its own blocks are written in one batch (a swap-out) and read back in one
/// batch later (a swap-in). The figures it stands for are said with each run; it is not a
/// recording.
struct SyntheticPrefixTrace {
    /// Requests in the trace.
    var requests = 400
    /// Mean arrivals per second.
    var arrivalsPerSecond = 8.0
    /// Shared prefixes.
    var prefixes = 16
    /// Zipf exponent of the prefixes' popularity (1: the most popular is read twice as often as
    /// the second).
    var zipfExponent = 1.0
    /// Blocks of a prefix: each prefix's length is drawn from this range.
    var prefixBlocks = 2...32
    /// Blocks of a request's own (unshared) KV.
    var ownBlocks = 4...24
    /// Share of requests preempted to flash and read back.
    var preemptedShare = 0.5
    /// Blocks per prefix-save batch: a prefix computed chunk by chunk is saved in batches of this
    /// many blocks, 20 ms apart (other requests' writes fall in between); nil: one batch.
    var saveBatchBlocks: Int?
    /// Bytes of one KV block (8 MiB: 64 tokens of an 8B Llama in f16).
    var blockBytes = 8 << 20
    /// Seed of the generator.
    var seed: UInt64 = 1

    /// The parameters, said in one line.
    var description: String {
        "synthetic prefix-sharing trace: \(requests) requests at \(arrivalsPerSecond)/s, \(prefixes) prefixes of \(prefixBlocks) blocks (Zipf \(zipfExponent)), saved \(saveBatchBlocks.map { "\($0) blocks per batch" } ?? "whole"), own KV \(ownBlocks) blocks, \(Int(preemptedShare * 100))% preempted, blocks of \(ByteSize(Int64(blockBytes))), seed \(seed)"
    }

    /// Generates the trace.
    func make() -> BlockTrace {
        var random = SplitMix64(seed: seed)
        let lengths = (0..<prefixes).map { _ in Int.random(in: prefixBlocks, using: &random) }
        let weights = (1...prefixes).map { pow(Double($0), -zipfExponent) }
        let total = weights.reduce(0, +)
        var saved = Set<Int>()
        var events: [BlockTraceEvent] = []
        var time = 0.0
        for request in 0..<requests {
            time += -log(1 - Double.random(in: 0..<1, using: &random)) / arrivalsPerSecond
            var pick = Double.random(in: 0..<total, using: &random)
            var prefix = 0
            while prefix < prefixes - 1, pick >= weights[prefix] {
                pick -= weights[prefix]
                prefix += 1
            }
            let keys = (0..<lengths[prefix]).map { Self.prefixKey(prefix, block: $0) }
            if saved.insert(prefix).inserted {
                let chunk = saveBatchBlocks ?? keys.count
                for (n, start) in stride(from: 0, to: keys.count, by: chunk).enumerated() {
                    let part = Array(keys[start..<min(start + chunk, keys.count)])
                    events.append(BlockTraceEvent(t: time + Double(n) * 0.02, op: .write, keys: part, bytes: part.count * blockBytes))
                }
            } else {
                events.append(BlockTraceEvent(t: time, op: .read, keys: keys, bytes: keys.count * blockBytes))
            }
            guard Double.random(in: 0..<1, using: &random) < preemptedShare else { continue }
            let own = (0..<Int.random(in: ownBlocks, using: &random)).map { BlockKey.sequence(UInt64(request), block: $0) }
            let out = time + Double.random(in: 0.5...2, using: &random)
            let back = out + Double.random(in: 0.5...3, using: &random)
            events.append(BlockTraceEvent(t: out, op: .write, keys: own, bytes: own.count * blockBytes))
            events.append(BlockTraceEvent(t: back, op: .read, keys: own, bytes: own.count * blockBytes))
            events.append(BlockTraceEvent(t: back, op: .delete, keys: own, bytes: 0))
        }
        return BlockTrace(events: events.enumerated().sorted { ($0.element.t, $0.offset) < ($1.element.t, $1.offset) }.map(\.element))
    }

    /// A content key that looks like a hash, for block `block` of prefix `prefix`.
    private static func prefixKey(_ prefix: Int, block: Int) -> BlockKey {
        var mixer = SplitMix64(seed: UInt64(prefix) << 32 | UInt64(block))
        return .content(high: mixer.next(), low: mixer.next())
    }
}

/// A small seeded generator (SplitMix64), so a synthetic trace is the same for the same seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
