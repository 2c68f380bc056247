import CPUKernels
import Foundation

/// The CPU backend's prepared step: the step's per-row arrays and sequences laid out once as the
/// C kernels read them, and the rotary table, computed on first use and shared by every layer.
///
/// A step that a replay serves (`CPUStepRecord`) is the record's own, and its buffers are
/// refilled in place from each new step of the shape (`refill(from:)`): the recorded ops hold
/// pointers to them.
final class CPUPreparedStep: PreparedStep, @unchecked Sendable {
    let batch: StepBatch
    /// The sequences with pointers into `blockTables` (after a refill, into the new step's).
    let sequences: UnsafeMutablePointer<hifc_sequence>
    private let blockTables: UnsafeMutablePointer<Int32>
    let tokenIDs: UnsafeMutablePointer<Int32>
    let positions: UnsafeMutablePointer<Int32>
    let slots: UnsafeMutablePointer<Int64>
    /// Rows and sequences of the step, read by every layer's ops without copying `batch` (whose
    /// arrays each copy retains and releases).
    let tokenCount: Int
    let sequenceCount: Int
    private let lock = NSLock()
    /// The pool sizes (in blocks) the step was checked against (`checkFits`), under `lock`.
    private var checkedPoolBlocks: Set<Int> = []
    /// Rotary tables by (inverse frequencies' storage, head dim); written once under `lock`.
    private var rotaryTables: [RotaryKey: RotaryTable] = [:]

    private struct RotaryKey: Hashable {
        let frequencies: ObjectIdentifier
        let headDim: Int
    }

    /// A table and the frequencies it was made from (alive as long as the model that owns them).
    private struct RotaryTable {
        let table: UnsafeMutablePointer<Float>
        let frequencies: UnsafePointer<Float>
    }

    init(batch: StepBatch) {
        self.batch = batch
        tokenCount = batch.tokenCount
        sequenceCount = batch.sequences.count
        let tableLength = batch.sequences.reduce(0) { $0 + $1.blockTable.count }
        let tables = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, tableLength))
        let entries = UnsafeMutablePointer<hifc_sequence>.allocate(capacity: max(1, batch.sequences.count))
        var offset = 0
        for (i, s) in batch.sequences.enumerated() {
            let table = tables + offset
            s.blockTable.withUnsafeBufferPointer { table.update(from: $0.baseAddress!, count: $0.count) }
            entries[i] = hifc_sequence(
                query_start: Int32(s.queryStart), query_length: Int32(s.queryLength), context_length: Int32(s.contextLength),
                blocks: UnsafePointer(table))
            offset += s.blockTable.count
        }
        blockTables = tables
        sequences = entries
        let ids = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, batch.tokenCount))
        batch.tokenIDs.withUnsafeBufferPointer { ids.update(from: $0.baseAddress!, count: $0.count) }
        tokenIDs = ids
        let rowPositions = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, batch.tokenCount))
        batch.positions.withUnsafeBufferPointer { rowPositions.update(from: $0.baseAddress!, count: $0.count) }
        positions = rowPositions
        let rowSlots = UnsafeMutablePointer<Int64>.allocate(capacity: max(1, batch.tokenCount))
        batch.slotMapping.withUnsafeBufferPointer { rowSlots.update(from: $0.baseAddress!, count: $0.count) }
        slots = rowSlots
    }

    deinit {
        blockTables.deallocate()
        sequences.deallocate()
        tokenIDs.deallocate()
        positions.deallocate()
        slots.deallocate()
        for entry in rotaryTables.values { entry.table.deallocate() }
    }

    /// Takes `other`'s per-step values into this step's buffers: its token ids, positions, slots
    /// and sequences (whose block tables stay `other`'s, which must outlive the ops that read
    /// them), and recomputes every rotary table for the new positions. `other` has this step's
    /// shape: as many rows and sequences, each of as many rows (`CPUStepRecord.Shape`).
    func refill(from other: CPUPreparedStep) {
        precondition(other.tokenCount == tokenCount && other.sequenceCount == sequenceCount, "a refill from a step of another shape")
        tokenIDs.update(from: other.tokenIDs, count: tokenCount)
        positions.update(from: other.positions, count: tokenCount)
        slots.update(from: other.slots, count: tokenCount)
        sequences.update(from: other.sequences, count: sequenceCount)
        lock.lock()
        defer { lock.unlock() }
        for (key, entry) in rotaryTables {
            hifc_rope_table(positions, tokenCount, entry.frequencies, Int32(key.headDim), entry.table)
        }
    }

    /// Checks the step against a pool of `poolBlocks` blocks of `blockTokens` tokens
    /// (`StepBatch.validate`: rows, sequences, block tables and slots inside the pool) the first
    /// time an op asks for that pool; every layer's ops ask again.
    func checkFits(poolBlocks: Int, blockTokens: Int) throws(BackendError) {
        guard batch.blockTokens == blockTokens else {
            throw .badStep("a step of \(batch.blockTokens)-token blocks for a pool of \(blockTokens)-token blocks")
        }
        lock.lock()
        defer { lock.unlock() }
        if checkedPoolBlocks.contains(poolBlocks) { return }
        try batch.validate(poolBlocks: poolBlocks)
        checkedPoolBlocks.insert(poolBlocks)
    }

    /// `[tokens][headDim]`: each row's cosines for the `headDim/2` frequencies, then its sines.
    func rotaryTable(frequencies: DeviceTensor, headDim: Int) throws -> UnsafePointer<Float> {
        let key = RotaryKey(frequencies: ObjectIdentifier(frequencies.storage), headDim: headDim)
        lock.lock()
        defer { lock.unlock() }
        if let entry = rotaryTables[key] { return UnsafePointer(entry.table) }
        let table = UnsafeMutablePointer<Float>.allocate(capacity: max(1, batch.tokenCount * headDim))
        let source = try frequencies.cpu("rotary")
        hifc_rope_table(positions, batch.tokenCount, source, Int32(headDim), table)
        rotaryTables[key] = RotaryTable(table: table, frequencies: source)
        return UnsafePointer(table)
    }
}
