import Foundation
import HiFCCore

/// Simulated SSDs for `bench placement`: each serves its requests one after another (first come,
/// first served) at a fixed bandwidth; a batch spread over several drives ends when its last
/// drive is done. This is the model the Swarm paper's I/O time rests on: a drive's bandwidth is
/// the resource, parallel drives add up. Reads and writes share one queue per drive (an SSD's
/// bandwidth is shared), or, `duplex`, each direction has its own (as the kernel's per-direction
/// block throttle behaves, which `throttled-loops.sh` uses).
struct SimulatedDrives: Sendable {
    /// Bytes per second of one drive, reading and writing.
    let readBandwidth: Double
    let writeBandwidth: Double
    /// Whether reads and writes queue apart.
    let duplex: Bool
    /// When each drive finishes the reads (and, unless duplex, the writes) it was given.
    private(set) var busyUntil: [Double]
    /// When each drive finishes the writes it was given, when duplex.
    private var writesBusyUntil: [Double]
    /// Drive-seconds of transfer given to all drives.
    private(set) var busySeconds = 0.0

    init(count: Int, readBandwidth: Double, writeBandwidth: Double, duplex: Bool = false) {
        self.readBandwidth = readBandwidth
        self.writeBandwidth = writeBandwidth
        self.duplex = duplex
        busyUntil = Array(repeating: 0, count: count)
        writesBusyUntil = busyUntil
    }

    var count: Int { busyUntil.count }

    /// Bytes each drive still has to transfer at `time` (its backlog, at read speed).
    func queuedBytes(at time: Double) -> [Int64] {
        busyUntil.indices.map { path in
            Int64((max(busyUntil[path] - time, 0) + (duplex ? max(writesBusyUntil[path] - time, 0) : 0)) * readBandwidth)
        }
    }

    /// Gives `bytes[path]` to each drive at `time`; returns when the last one is done (`time`
    /// when no bytes are given).
    mutating func transfer(_ bytes: [Int64], write: Bool, at time: Double) -> Double {
        var end = time
        for (path, amount) in bytes.enumerated() where amount > 0 {
            let seconds = Double(amount) / (write ? writeBandwidth : readBandwidth)
            let done: Double
            if write && duplex {
                writesBusyUntil[path] = max(writesBusyUntil[path], time) + seconds
                done = writesBusyUntil[path]
            } else {
                busyUntil[path] = max(busyUntil[path], time) + seconds
                done = busyUntil[path]
            }
            busySeconds += seconds
            end = max(end, done)
        }
        return end
    }
}

/// The figures of one placement policy over one trace.
struct PlacementSimulationResult: Codable, Sendable {
    var policy: String
    var ssds: Int
    /// Sum over read batches of issue-to-completion time, and the same for write batches.
    var read_io_seconds: Double
    var write_io_seconds: Double
    /// Both together: the I/O time of the trace.
    var io_seconds: Double
    var mean_read_ms: Double
    var p99_read_ms: Double
    /// Drive-seconds of transfer over drive-seconds available while any I/O was in flight (duplex
    /// drives count each direction's seconds, so this can pass 100%).
    var bandwidth_utilization: Double
    /// Bytes of extra copies written (swarm's replication), and blocks read that were never written.
    var copy_bytes: Int64
    var read_misses: Int

    /// The figures from read batches' latencies and the sum of write batches' seconds.
    init(
        policy: FlashPlacementPolicy, ssds: Int, readLatencies: [Double], writeSeconds: Double, utilization: Double, copyBytes: Int64,
        misses: Int
    ) {
        let sorted = readLatencies.sorted()
        let readSeconds = sorted.reduce(0, +)
        self.policy = policy.rawValue
        self.ssds = ssds
        read_io_seconds = readSeconds
        write_io_seconds = writeSeconds
        io_seconds = readSeconds + writeSeconds
        mean_read_ms = sorted.isEmpty ? 0 : readSeconds / Double(sorted.count) * 1000
        p99_read_ms = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.99).rounded(.up)) - 1)] * 1000
        bandwidth_utilization = utilization
        copy_bytes = copyBytes
        read_misses = misses
    }

    /// Seconds covered by at least one of `intervals`.
    static func coveredSeconds(_ intervals: [(start: Double, end: Double)]) -> Double {
        var span = 0.0
        var current: (start: Double, end: Double)?
        for interval in intervals.sorted(by: { $0.start < $1.start }) {
            if let open = current, interval.start <= open.end {
                current = (open.start, max(open.end, interval.end))
            } else {
                if let open = current { span += open.end - open.start }
                current = interval
            }
        }
        if let open = current { span += open.end - open.start }
        return span
    }
}

/// Replays a block trace over `SimulatedDrives` under one placement policy, with the same pure
/// decisions the flash store makes (`FlashPlacement`, `SwarmPlacement`): where each written block
/// goes, which copy each read uses, and, for swarm, the extra copies written after reads.
struct PlacementSimulation {
    let policy: FlashPlacementPolicy
    private(set) var drives: SimulatedDrives
    private var locations: [BlockKey: [Int]] = [:]
    private var usedBytes: [Int64]
    private var rotation = 0
    private var swarm: SwarmPlacement?
    private var readLatencies: [Double] = []
    private var writeSeconds = 0.0
    private var intervals: [(start: Double, end: Double)] = []
    private var copyBytes: Int64 = 0
    private var misses = 0

    init(policy: FlashPlacementPolicy, drives: SimulatedDrives, replicationBudget: Int64) {
        self.policy = policy
        self.drives = drives
        usedBytes = Array(repeating: 0, count: drives.count)
        if policy == .swarm {
            swarm = SwarmPlacement(pathCount: drives.count, settings: .init(replicationBudgetBytes: replicationBudget))
        }
    }

    /// Applies one batch (at its time, `scale` times the trace's).
    mutating func apply(_ event: BlockTraceEvent, timeScale scale: Double = 1) {
        let time = event.t * scale
        let length = event.blockBytes
        switch event.op {
        case .delete:
            for key in event.keys { forget(key, length: length) }
        case .write:
            for key in event.keys { forget(key, length: length) }
            let paths = placeWrite(event, at: time)
            var bytes = [Int64](repeating: 0, count: drives.count)
            for (key, path) in zip(event.keys, paths) {
                bytes[path] += Int64(length)
                usedBytes[path] += Int64(length)
                locations[key] = [path]
            }
            let end = drives.transfer(bytes, write: true, at: time)
            writeSeconds += end - time
            intervals.append((time, end))
        case .read:
            let present = event.keys.filter { locations[$0] != nil }
            misses += event.keys.count - present.count
            guard !present.isEmpty else { return }
            let copies = present.map { locations[$0]! }
            let lengths = Array(repeating: length, count: present.count)
            let queued = drives.queuedBytes(at: time)
            let chosen = policy == .swarm ? SwarmPlacement.chooseCopies(copies, lengths: lengths, queuedBytes: queued) : copies.map { $0[0] }
            var bytes = [Int64](repeating: 0, count: drives.count)
            for path in chosen { bytes[path] += Int64(length) }
            let end = drives.transfer(bytes, write: false, at: time)
            readLatencies.append(end - time)
            intervals.append((time, end))
            if swarm != nil { replicate(present, lengths: lengths, copies: copies, queuedAtIssue: queued, after: end) }
        }
    }

    private mutating func placeWrite(_ event: BlockTraceEvent, at time: Double) -> [Int] {
        switch policy {
        case .affinity:
            return FlashPlacement(policy: .affinity, pathCount: drives.count, gpuIndex: event.replica).paths(
                forBatchOf: event.keys.count, rotation: 0)
        case .stripe:
            defer { rotation &+= event.keys.count }
            return FlashPlacement(policy: .stripe, pathCount: drives.count).paths(forBatchOf: event.keys.count, rotation: rotation)
        case .swarm:
            let locations = self.locations
            return swarm!.placeBatch(
                keys: event.keys, lengths: Array(repeating: event.blockBytes, count: event.keys.count),
                queuedBytes: drives.queuedBytes(at: time), usedBytes: usedBytes, pathsOf: { locations[$0] ?? [] })
        }
    }

    /// Swarm's copies after a read (`queued`: the drives' backlogs when it was issued), written
    /// once the read is done (the store writes them from the bytes just read).
    private mutating func replicate(_ keys: [BlockKey], lengths: [Int], copies: [[Int]], queuedAtIssue queued: [Int64], after time: Double) {
        let plan: ReplicationPlan
        do {  // the snapshot of `locations` ends here, before they change
            let locations = self.locations
            let (queued, used) = (drives.queuedBytes(at: time), usedBytes)
            plan = swarm!.noteRead(
                keys: keys, lengths: lengths, copies: copies, queuedBytes: queued, usedBytes: used, pathsOf: { locations[$0] ?? [] })
        }
        for key in plan.drops {
            guard let held = self.locations[key], held.count > 1 else { continue }
            for path in held.dropFirst() { usedBytes[path] -= Int64(lengths[0]) }
            self.locations[key] = [held[0]]
        }
        var bytes = [Int64](repeating: 0, count: drives.count)
        for copy in plan.copies {
            bytes[copy.path] += Int64(lengths[0])
            usedBytes[copy.path] += Int64(lengths[0])
            self.locations[copy.key, default: []].append(copy.path)
            copyBytes += Int64(lengths[0])
        }
        let end = drives.transfer(bytes, write: true, at: time)
        if end > time { intervals.append((time, end)) }
    }

    private mutating func forget(_ key: BlockKey, length: Int) {
        guard let held = locations.removeValue(forKey: key) else { return }
        for path in held { usedBytes[path] -= Int64(length) }
        swarm?.forgetCopies(of: key)
    }

    /// The figures so far.
    var result: PlacementSimulationResult {
        PlacementSimulationResult(
            policy: policy, ssds: drives.count, readLatencies: readLatencies, writeSeconds: writeSeconds,
            utilization: drives.busySeconds / max(PlacementSimulationResult.coveredSeconds(intervals) * Double(drives.count), .leastNonzeroMagnitude),
            copyBytes: copyBytes, misses: misses)
    }
}
