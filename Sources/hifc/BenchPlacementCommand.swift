import ArgumentParser
import FlashStore
import Foundation
import HiFCCore

/// `hifc bench placement`: flash placement policies (affinity, stripe, swarm) compared on one
/// block trace, over simulated SSDs and, with `--real`, through the flash store on real paths.
struct BenchPlacementCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "placement",
        abstract: "Compare flash placement policies over several SSDs by replaying a block trace.",
        discussion: """
            The trace is a JSONL file of block batches (bench swap --trace records one), or, with \
            --synthesize, a synthetic prefix-sharing trace (documented in its output; --out keeps \
            it). Each policy replays it over --ssds simulated drives of --bandwidth each (first come, \
            first served per drive; a batch ends when its last drive does), making the flash store's \
            own placement decisions. Reported: I/O time (the sum over batches of issue to \
            completion, reads and writes), read latency, bandwidth utilisation (drive-seconds of \
            transfer over drive-seconds available while any I/O was in flight) and bytes of extra \
            copies. With --real PATHS the same trace runs through a FlashStore on those paths, one \
            scratch region each (removed after), utilisation counted against --bandwidth; \
            --limit-bandwidth holds each path to that speed in the store's I/O layer (a benchmark stand-in, for when the kernel cannot \
            throttle the paths; bench/flash-paths/throttled-loops.sh makes kernel-throttled ones).
            """
    )

    @Option(help: "A JSONL block trace (bench swap --trace FILE).")
    var trace: String?

    @Flag(help: "Replay a synthetic prefix-sharing trace instead of a recorded one.")
    var synthesize = false

    @Option(help: "Write the synthetic trace to this file.")
    var out: String?

    @Option(help: "Simulated SSDs.")
    var ssds: Int = 4

    @Option(help: "Read bandwidth of one simulated SSD per second (the paper's Gen4 drive: 7GB).")
    var bandwidth: String = "7GB"

    @Option(name: .customLong("write-bandwidth"), help: "Write bandwidth of one SSD per second; unset: --bandwidth.")
    var writeBandwidth: String?

    @Flag(help: "Simulated drives read and write at full bandwidth at once (the kernel throttle's model, for --real on throttled loops).")
    var duplex = false

    @Option(help: "Placement policies to compare, comma-separated.")
    var policies: String = "affinity,stripe,swarm"

    @Option(name: .customLong("replication-budget"), help: "Bytes swarm's extra copies may take in all; unset: a tenth of --capacity x --ssds.")
    var replicationBudget: String?

    @Option(help: "Region capacity per path (real runs; and the replication budget's base).")
    var capacity: String = "4GiB"

    @Option(name: .customLong("time-scale"), help: "Multiplies the trace's issue times (above 1: a lighter load).")
    var timeScale: Double = 1

    @Option(help: "Replay through the flash store on these directories (comma-separated, one per SSD) too.")
    var real: String?

    @Option(name: .customLong("limit-bandwidth"), help: "Real runs: hold each path to this many bytes per second in the store's I/O layer.")
    var limitBandwidth: String?

    @Option(name: .customLong("queue-depth"), help: "Real runs: the store's I/O threads.")
    var queueDepth: Int = 32

    @Option(help: "Synthetic trace: requests.")
    var requests: Int = 400

    @Option(help: "Synthetic trace: arrivals per second.")
    var rate: Double = 8

    @Option(help: "Synthetic trace: shared prefixes.")
    var prefixes: Int = 16

    @Option(name: .customLong("save-batch"), help: "Synthetic trace: blocks per prefix-save batch; unset: a whole prefix in one.")
    var saveBatch: Int?

    @Option(name: .customLong("block-size"), help: "Synthetic trace: bytes of one KV block.")
    var blockSize: String = "8MiB"

    @Option(help: "Synthetic trace: seed.")
    var seed: UInt64 = 1

    @Flag(help: "Print a JSON list of results instead of a table.")
    var json = false

    func run() async throws {
        let read: Double
        let write: Double
        let regionCapacity: ByteSize
        let budget: Int64
        let limit: Double?
        let policyList: [FlashPlacementPolicy]
        do {
            read = Double(try ByteSize(parsing: bandwidth).bytes)
            write = try writeBandwidth.map { Double(try ByteSize(parsing: $0).bytes) } ?? read
            regionCapacity = try ByteSize(parsing: capacity)
            budget = try replicationBudget.map { try ByteSize(parsing: $0).bytes } ?? regionCapacity.bytes * Int64(ssds) / 10
            limit = try limitBandwidth.map { Double(try ByteSize(parsing: $0).bytes) }
            policyList = try policies.split(separator: ",").map {
                guard let policy = FlashPlacementPolicy(rawValue: $0.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("unknown policy '\($0)'; use affinity, stripe or swarm")
                }
                return policy
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ValidationError("\(error)")
        }
        guard ssds > 0, read > 0, write > 0, timeScale > 0 else { throw ValidationError("--ssds, the bandwidths and --time-scale must be positive") }

        let blockTrace: BlockTrace
        let source: String
        if synthesize {
            var synthetic = SyntheticPrefixTrace()
            synthetic.requests = requests
            synthetic.arrivalsPerSecond = rate
            synthetic.prefixes = prefixes
            synthetic.seed = seed
            synthetic.saveBatchBlocks = saveBatch
            do { synthetic.blockBytes = Int(try ByteSize(parsing: blockSize).bytes) } catch { throw ValidationError("--block-size: \(error)") }
            blockTrace = synthetic.make()
            source = synthetic.description
            if let out { try blockTrace.write(to: out) }
        } else if let trace {
            do { blockTrace = try BlockTrace(contentsOf: trace) } catch { throw ValidationError("\(error)") }
            source = "trace \(trace)"
        } else {
            throw ValidationError("give --trace FILE or --synthesize")
        }

        var results: [(kind: String, result: PlacementSimulationResult)] = []
        for policy in policyList {
            var simulation = PlacementSimulation(
                policy: policy, drives: SimulatedDrives(count: ssds, readBandwidth: read, writeBandwidth: write, duplex: duplex),
                replicationBudget: budget)
            for event in blockTrace.events { simulation.apply(event, timeScale: timeScale) }
            results.append(("simulated", simulation.result))
        }
        if let real {
            let paths = FlashStoreConfiguration.parsePaths(real)
            guard !paths.isEmpty else { throw ValidationError("--real names no path") }
            for policy in policyList {
                results.append(
                    (
                        "real",
                        try await replay(
                            blockTrace, on: paths, policy: policy, capacity: regionCapacity, budget: budget, limit: limit, bandwidth: read)
                    ))
            }
        }
        report(results, heading: "bench placement: \(source); \(blockTrace.summary)")
    }

    /// One policy's replay through a fresh store on scratch regions under `paths`.
    /// `bandwidth` (the paths' speed, as throttled) is the base of the bandwidth utilisation.
    private func replay(
        _ trace: BlockTrace, on paths: [String], policy: FlashPlacementPolicy, capacity: ByteSize, budget: Int64, limit: Double?, bandwidth: Double
    ) async throws -> PlacementSimulationResult {
        let scratch = paths.map { ($0 as NSString).appendingPathComponent("hifc-bench-placement-\(getpid())") }
        for directory in scratch { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        defer { scratch.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let segment = ByteSize.mib(64)
        let store = try FlashStore(
            configuration: FlashStoreConfiguration(
                paths: scratch, capacityPerPath: capacity, segmentSize: segment, placement: policy, queueDepth: queueDepth,
                replicationBudget: ByteSize(budget)),
            faultInjector: limit.map { PathBandwidthLimiter(bytesPerSecond: $0) })
        defer { store.close() }
        return try await TraceReplay(trace: trace, timeScale: timeScale).run(on: store, policy: policy, bandwidth: limit ?? bandwidth)
    }

    private func report(_ results: [(kind: String, result: PlacementSimulationResult)], heading: String) {
        if json {
            struct Row: Encodable {
                var kind: String
                var result: PlacementSimulationResult
                func encode(to encoder: any Encoder) throws {
                    try result.encode(to: encoder)
                    var container = encoder.container(keyedBy: Keys.self)
                    try container.encode(kind, forKey: .kind)
                }
                enum Keys: String, CodingKey { case kind }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            let rows = results.map { Row(kind: $0.kind, result: $0.result) }
            print(String(decoding: (try? encoder.encode(rows)) ?? Data(), as: UTF8.self))
            return
        }
        print(heading)
        print("run        policy    SSDs  I/O s     read s    write s   vs affinity  mean read ms  p99 read ms  utilisation  copies")
        for (kind, r) in results {
            let affinity = results.first { $0.kind == kind && $0.result.policy == FlashPlacementPolicy.affinity.rawValue }?.result.io_seconds
            let ratio = affinity.map { $0 > 0 ? String(format: "%.2fx", r.io_seconds / $0) : "-" } ?? "-"
            print(
                [
                    kind.padding(toLength: 10, withPad: " ", startingAt: 0), r.policy.padding(toLength: 9, withPad: " ", startingAt: 0),
                    String(format: "%4d", r.ssds), String(format: "%8.2f", r.io_seconds), String(format: "%8.2f", r.read_io_seconds),
                    String(format: "%8.2f", r.write_io_seconds), ratio.padding(toLength: 12, withPad: " ", startingAt: 0),
                    String(format: "%12.1f", r.mean_read_ms), String(format: "%12.1f", r.p99_read_ms),
                    String(format: "%11.1f%%", r.bandwidth_utilization * 100), "\(ByteSize(r.copy_bytes))",
                ].joined(separator: " "))
        }
    }
}
