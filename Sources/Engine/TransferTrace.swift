import Backend
import FlashStore
import Foundation
import HiFCCore
import Synchronization

/// A record of the engine's block transfers to and from flash, for replaying them over simulated
/// drives (`hifc bench placement`): one JSON object per line, one line per batch, written as each
/// batch ends:
///
/// ```
/// {"t":0.0132,"seconds":0.0041,"op":"write","replica":0,"keys":["seq3/block0","seq3/block1"],"bytes":131072}
/// ```
/// `t` is when the batch was issued (seconds since the recorder opened), `seconds` how long it
/// took, `op` is `write`, `read` or `delete`, `keys` are `BlockKey` descriptions (`seqS/blockB`
/// or `prefix:<32 hex digits>`), `bytes` the batch's payload bytes (its blocks are equal in size).
/// A batch is one swap-out, one swap-in, or one prefix save or load: the blocks of one read are
/// co-activated. (Transfers are recorded as the engine issues them to its flash tier, so a tier
/// that gives back only the leading blocks of a read is still recorded with all its keys.)
public final class TransferTraceRecorder: Sendable {
    private let file: Mutex<FileHandle?>
    private let opened = ContinuousClock.now
    /// The trace file.
    public let path: String

    /// Creates (or empties) the trace file at `path`.
    public init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
        }
        self.path = path
        file = Mutex(try FileHandle(forWritingTo: URL(fileURLWithPath: path)))
    }

    /// The instant to pass as a batch's `issued`.
    public var now: ContinuousClock.Instant { ContinuousClock.now }

    /// Appends one batch.
    public func record(_ op: String, keys: [BlockKey], bytes: Int, issued: ContinuousClock.Instant, replica: Int) {
        let t = (issued - opened).inSeconds
        let took = (ContinuousClock.now - issued).inSeconds
        let list = keys.map { "\"\($0.description)\"" }.joined(separator: ",")
        let line =
            String(format: "{\"t\":%.6f,\"seconds\":%.6f,", t, took)
            + "\"op\":\"\(op)\",\"replica\":\(replica),\"keys\":[\(list)],\"bytes\":\(bytes)}\n"
        file.withLock { $0?.write(Data(line.utf8)) }
    }

    /// Flushes and closes the file; later records are dropped.
    public func close() {
        file.withLock { handle in
            try? handle?.close()
            handle = nil
        }
    }
}

/// A tier that records each batch it writes, reads and removes in a `TransferTraceRecorder`,
/// then does what `base` does.
public final class TracedTierStore: KVTierStore {
    private let base: any KVTierStore
    private let recorder: TransferTraceRecorder
    private let replica: Int

    /// `base`, traced into `recorder` as replica `replica`.
    public init(_ base: any KVTierStore, recorder: TransferTraceRecorder, replica: Int = 0) {
        self.base = base
        self.recorder = recorder
        self.replica = replica
    }

    public var tier: SwapTier { base.tier }
    public var capacityBytes: Int64? { base.capacityBytes }
    public var bytesWrittenToday: Int64? { base.bytesWrittenToday }
    public var storedContentKeys: [BlockKey] { base.storedContentKeys }

    public func write(_ blocks: [KVBlockSource]) async throws(KVTierError) {
        let issued = recorder.now
        defer { recorder.record("write", keys: blocks.map(\.key), bytes: blocks.reduce(0) { $0 + $1.bytes.count }, issued: issued, replica: replica) }
        try await base.write(blocks)
    }

    public func read(_ blocks: [KVBlockDestination]) async -> (intact: Int, failure: KVTierError?) {
        let issued = recorder.now
        defer { recorder.record("read", keys: blocks.map(\.key), bytes: blocks.reduce(0) { $0 + $1.bytes.count }, issued: issued, replica: replica) }
        return await base.read(blocks)
    }

    public func remove(_ keys: [BlockKey]) {
        recorder.record("delete", keys: keys, bytes: 0, issued: recorder.now, replica: replica)
        base.remove(keys)
    }
}

/// A backend's direct device<->flash swapper whose batches are recorded in a
/// `TransferTraceRecorder`, each block counted as `blockBytes`.
public final class TracedDeviceSwapper: DeviceKVSwapper {
    private let base: any DeviceKVSwapper
    private let recorder: TransferTraceRecorder
    private let blockBytes: Int
    private let replica: Int

    /// `base`, traced into `recorder` as replica `replica`.
    public init(_ base: any DeviceKVSwapper, recorder: TransferTraceRecorder, blockBytes: Int, replica: Int = 0) {
        self.base = base
        self.recorder = recorder
        self.blockBytes = blockBytes
        self.replica = replica
    }

    public func swapOutToFlash(blocks: [Int], keys: [BlockKey]) async throws {
        let issued = recorder.now
        defer { recorder.record("write", keys: keys, bytes: keys.count * blockBytes, issued: issued, replica: replica) }
        try await base.swapOutToFlash(blocks: blocks, keys: keys)
    }

    public func swapInFromFlash(keys: [BlockKey], into blocks: [Int]) async throws {
        let issued = recorder.now
        defer { recorder.record("read", keys: keys, bytes: keys.count * blockBytes, issued: issued, replica: replica) }
        try await base.swapInFromFlash(keys: keys, into: blocks)
    }

    public func removeFromFlash(_ keys: [BlockKey]) {
        recorder.record("delete", keys: keys, bytes: 0, issued: recorder.now, replica: replica)
        base.removeFromFlash(keys)
    }
}

extension BlockKey {
    /// A key from its description (`seqS/blockB`, `prefix:<32 hex digits>`), as traces hold it;
    /// nil for any other text.
    public init?(traceText text: String) {
        if text.hasPrefix("seq"), let slash = text.firstIndex(of: "/") {
            let rest = text[text.index(after: slash)...]
            guard rest.hasPrefix("block"), let sequence = UInt64(text[text.index(text.startIndex, offsetBy: 3)..<slash]),
                let block = UInt64(rest.dropFirst(5))
            else { return nil }
            self = BlockKey(kind: .sequence, high: sequence, low: block)
        } else if text.hasPrefix("prefix:"), text.count == 39 {
            let hex = text.dropFirst(7)
            guard let high = UInt64(hex.prefix(16), radix: 16), let low = UInt64(hex.suffix(16), radix: 16) else { return nil }
            self = .content(high: high, low: low)
        } else {
            return nil
        }
    }
}
