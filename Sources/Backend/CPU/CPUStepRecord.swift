import Foundation

/// A decode step's ops as the CPU backend ran them the first time a step of their shape came,
/// kept to run again for the later steps of that shape: the CPU's counterpart of the CUDA
/// backend's decode-step graphs (`CPUBackend.runStep`).
///
/// Why: a decode step of a small model is some 200 ops of a few microseconds each, and on many
/// cores the Swift around each op (its shape checks, its output tensor's allocation, reference
/// counting, the casts of the pool and the step) was 0.3 ms of a 2.3 ms step on the GPU host's
/// 16 cores (bench/results/cpu-vs-llamacpp.md). A replay calls each op's kernel again with the
/// arguments worked out when it was recorded: the same output tensors (kept here, rewritten each
/// step), the same weights, and the per-step values (token ids, positions, slots, sequences,
/// rotary tables) read from the record's own prepared step, refilled from each new step before
/// the ops run. What is checked once per step instead of once per op: the step against the pool
/// (`CPUPreparedStep.checkFits`) and, in the embedding's kernel call, the token ids.
final class CPUStepRecord: @unchecked Sendable {
    // Made and replayed by one thread at a time: `CPUStepRecords` hands a record to one caller.

    /// The steps a record serves: decode steps of `rows` sequences with one new token each, every
    /// row's logits wanted, in row order. Every op's shapes and every kernel's arguments but the
    /// per-step values follow from it; the attention kernel plans its split of the keys from
    /// the contexts each call.
    struct Shape: Hashable, Sendable {
        let rows: Int

        /// The shape of `step`, or nil when it is no decode step of at most `mostRows` rows.
        static func of(_ step: StepBatch, mostRows: Int) -> Shape? {
            let n = step.tokenCount
            guard n > 0, n <= mostRows, step.sequences.count == n,
                step.sequences.enumerated().allSatisfy({ $1.queryLength == 1 && $1.queryStart == $0 }),
                step.logitRows.count == n, step.logitRows.enumerated().allSatisfy({ Int($1) == $0 })
            else { return nil }
            return Shape(rows: n)
        }
    }

    /// The record being made on this thread, while `CPUBackend.runStep` runs a step's ops.
    @TaskLocal static var recording: CPUStepRecord?

    let shape: Shape
    /// The backend whose ops are recorded (ops of another backend on the same thread are not).
    let backend: ObjectIdentifier
    /// The step the recorded ops read their per-step values from.
    let step: CPUPreparedStep
    /// A record bakes in the weights' and the pool's memory: it serves only the model and pool
    /// it was made with, held weakly and compared on every step.
    private weak var model: AnyObject?
    private weak var pool: AnyObject?
    private var ops: [() throws -> Void] = []
    /// The memory of the tensors the ops write, kept for the replays.
    private var storages: [CPUStorage] = []
    /// Bytes of `storages`.
    private(set) var bytes = 0
    /// The step's logits, rewritten by each replay.
    private var logits: DeviceTensor?
    /// False when an op that cannot be replayed ran while recording: steps of this shape then
    /// run op by op.
    private(set) var replayable = true

    init(shape: Shape, backend: AnyObject, model: AnyObject, pool: AnyObject, step: CPUPreparedStep) {
        self.shape = shape
        self.backend = ObjectIdentifier(backend)
        self.model = model
        self.pool = pool
        self.step = step
    }

    /// Whether the record was made with `model` over `pool`.
    func serves(model: AnyObject, pool: AnyObject) -> Bool { self.model === model && self.pool === pool }

    /// Keeps an op's kernel call, which must capture only what stays valid across steps.
    func append(_ op: @escaping () throws -> Void) { ops.append(op) }

    /// Memory for a tensor of `count` floats that an op is about to write: that of a tensor the
    /// step no longer uses (none but the record holds it, so every op that reads it has been
    /// recorded already and runs before the new writer in a replay too), else new memory, kept.
    /// Reusing keeps a replay's working set as small as the step's live tensors, as the allocator's
    /// reuse of freed memory does for a step run op by op: one fresh buffer per op would spread a
    /// step over megabytes and out of the caches.
    func storage(count: Int) throws -> CPUStorage {
        var best: Int?
        for i in storages.indices where storages[i].count >= count && isKnownUniquelyReferenced(&storages[i]) {
            if best.map({ storages[i].count < storages[$0].count }) ?? true { best = i }
        }
        if let best { return storages[best] }
        let storage = try CPUStorage(count: count, zeroed: false)
        storages.append(storage)
        bytes += count * MemoryLayout<Float>.size
        return storage
    }

    /// Marks the record as one that cannot be replayed (an op ran that does not record itself).
    func refuse() { replayable = false }

    /// Ends the recording with the step's logits.
    func finish(logits: DeviceTensor?) {
        self.logits = logits
        if logits == nil { replayable = false }
    }

    /// Runs the recorded ops for `step` (of this record's shape, checked against the pool) and
    /// returns its logits, valid until the next step.
    func replay(_ step: CPUPreparedStep) throws -> DeviceTensor? {
        self.step.refill(from: step)
        // `step` owns the block tables the refilled sequences point into.
        return try withExtendedLifetime(step) {
            for op in ops { try op() }
            return logits
        }
    }
}

/// The CPU backend's step records, by shape, at most `mostBytes` of kept tensors in all (the
/// least recently used go first).
final class CPUStepRecords: @unchecked Sendable {
    /// Decode steps of up to this many rows are recorded: the Swift around the ops is a fixed
    /// cost a step, which the work of more rows dwarfs.
    static let mostRows = 16
    /// Kept tensors of all records together: decode-sized activations, a few MB a record for a
    /// small model; a record past this is not kept.
    static let mostBytes = 256 << 20

    private let lock = NSLock()
    /// Records not in use, least recently used first.
    private var idle: [CPUStepRecord] = []
    /// Steps recorded and replayed so far (for tests and `bench model`).
    private(set) var recorded = 0, replayed = 0

    /// `HIFC_CPU_STEP_REPLAY`: `0`/`off` turns replays off (every step op by op), `1`/`on` (the
    /// default) leaves them on; nil for any other value.
    static func enabled(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool? {
        switch environment["HIFC_CPU_STEP_REPLAY"]?.lowercased() {
        case nil, "", "1", "on": return true
        case "0", "off": return false
        default: return nil
        }
    }

    /// The record of `shape` for `model` over `pool`, taken out until `put` returns it; nil when
    /// there is none (records of another model or pool are dropped).
    func take(_ shape: CPUStepRecord.Shape, model: AnyObject, pool: AnyObject) -> CPUStepRecord? {
        lock.lock()
        defer { lock.unlock() }
        guard let index = idle.firstIndex(where: { $0.shape == shape }) else { return nil }
        let record = idle.remove(at: index)
        return record.serves(model: model, pool: pool) ? record : nil
    }

    /// Counts a step that made a record (`replay` false) or replayed one.
    func count(replay: Bool) {
        lock.lock()
        defer { lock.unlock() }
        if replay { replayed += 1 } else { recorded += 1 }
    }

    /// Returns a record after its step, dropping the least recently used ones past `mostBytes`.
    func put(_ record: CPUStepRecord) {
        lock.lock()
        defer { lock.unlock() }
        idle.removeAll { $0.shape == record.shape }
        idle.append(record)
        var total = idle.reduce(0) { $0 + $1.bytes }
        while total > Self.mostBytes, let oldest = idle.first {
            total -= oldest.bytes
            idle.removeFirst()
        }
    }
}
