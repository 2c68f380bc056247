import FlashStore
import Foundation
import HiFCCore

/// Replays a block trace through a real `FlashStore` on real paths (`bench placement --real`):
/// each batch is issued at its time in the trace (open loop, `timeScale` times the recorded
/// times) as a put, a get or a delete of blocks of the recorded size, and its time from issue to
/// completion is measured, so the figures compare with `PlacementSimulation`'s.
struct TraceReplay {
    let trace: BlockTrace
    let timeScale: Double

    /// What one replay measured.
    struct Measured: Sendable {
        var readLatencies: [Double] = []
        var writeSeconds = 0.0
        var intervals: [(start: Double, end: Double)] = []
        var bytesMoved: Int64 = 0
        var misses = 0
    }

    /// Replays the trace through `store` and returns its figures under `policy` (bandwidth
    /// utilisation against `bandwidth` bytes/s per path).
    func run(on store: FlashStore, policy: FlashPlacementPolicy, bandwidth: Double) async throws -> PlacementSimulationResult {
        let largest = trace.events.map(\.blockBytes).max() ?? 0
        let payload = AlignedBuffer(count: max(FlashLayout.padded(largest), 4096))
        for i in stride(from: 0, to: payload.bytes.count, by: 8) {
            payload.bytes.storeBytes(of: UInt64(i) &* 0x9E37_79B9_7F4A_7C15, toByteOffset: i, as: UInt64.self)
        }
        let started = ContinuousClock.now
        let first = trace.events.first?.t ?? 0
        let measured = try await withThrowingTaskGroup(of: Measured.self) { group in
            for event in trace.events {
                let due = (event.t - first) * timeScale
                let now = Self.seconds(since: started)
                if due > now { try await Task.sleep(for: .seconds(due - now)) }
                group.addTask { try await Self.issue(event, store: store, payload: payload, started: started) }
            }
            var total = Measured()
            for try await one in group {
                total.readLatencies += one.readLatencies
                total.writeSeconds += one.writeSeconds
                total.intervals += one.intervals
                total.bytesMoved += one.bytesMoved
                total.misses += one.misses
            }
            return total
        }
        withExtendedLifetime(payload) {}
        let span = PlacementSimulationResult.coveredSeconds(measured.intervals)
        let copied = store.copyStats.bytesCopied
        let paths = Double(store.configuration.paths.count)
        return PlacementSimulationResult(
            policy: policy, ssds: store.configuration.paths.count, readLatencies: measured.readLatencies, writeSeconds: measured.writeSeconds,
            utilization: span > 0 ? Double(measured.bytesMoved + copied) / bandwidth / (span * paths) : 0,
            copyBytes: copied, misses: measured.misses)
    }

    /// Issues one batch and measures it.
    private static func issue(_ event: BlockTraceEvent, store: FlashStore, payload: AlignedBuffer, started: ContinuousClock.Instant) async throws
        -> Measured
    {
        var measured = Measured()
        let issued = seconds(since: started)
        let length = event.blockBytes
        switch event.op {
        case .delete:
            store.delete(event.keys)
            return measured
        case .write:
            let bytes = UnsafeRawBufferPointer(rebasing: payload.bytes[0..<length])
            try await store.put(event.keys.map { FlashPutItem(key: $0, bytes: bytes) })
            measured.writeSeconds = seconds(since: started) - issued
        case .read:
            let buffer = AlignedBuffer(count: max(FlashLayout.padded(length) * event.keys.count, 4096), zeroed: false)
            let stride = FlashLayout.padded(length)
            let targets = event.keys.indices.map {
                FlashReadTarget(UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[$0 * stride..<$0 * stride + length]))
            }
            let results = await store.get(event.keys, into: targets)
            withExtendedLifetime(buffer) {}
            measured.misses = results.filter { !$0.isHit }.count
            measured.readLatencies = [seconds(since: started) - issued]
        }
        measured.intervals = [(issued, seconds(since: started))]
        measured.bytesMoved = Int64(event.bytes)
        return measured
    }

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        (ContinuousClock.now - start).inSeconds
    }
}
