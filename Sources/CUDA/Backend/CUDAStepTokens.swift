import Backend
import Synchronization

/// A step's picked tokens on the GPU: each logit row's argmax or draw in device memory, which the
/// next step's token ids are copied from on the device (`CUDABackend.prepare(_:feeding:)`), and
/// their copy to pinned host memory, queued behind them; `wait()` waits for that copy only.
final class CUDAStepTokens: StepTokens, @unchecked Sendable {
    // Used from the thread that runs the model's steps.
    /// Int32 per logit row, in the memory cache's buffer (given back when this goes: anything
    /// that takes it again is queued after the step that reads it).
    let indices: DeviceBuffer
    /// Logit rows.
    let rows: Int
    private let memory: DeviceMemoryCache
    private let host: CUDATokenStaging.Slot
    private let staging: CUDATokenStaging

    /// Queues the copy of `rows` indices at `indices` (from `memory`) to the host on `stream`.
    init(indices: DeviceBuffer, rows: Int, memory: DeviceMemoryCache, staging: CUDATokenStaging, stream: CUDAStream) throws {
        self.indices = indices
        self.rows = rows
        self.memory = memory
        self.staging = staging
        host = try staging.take(bytes: rows * 4)
        do {
            try stream.copy(from: indices.address, to: host.buffer.pointer, bytes: rows * 4)
            try host.copied.record(on: stream)
        } catch {
            staging.give(host)
            throw error
        }
    }

    deinit {
        memory.give(indices)
        staging.give(host)
    }

    func wait() throws -> [Int] {
        try host.copied.synchronize()
        let values = host.buffer.pointer.assumingMemoryBound(to: Int32.self)
        return (0..<rows).map { Int(values[$0]) }
    }
}

/// Pinned host buffers, each with the event its last copy recorded, that step tokens come back
/// through: two steps' at a time are in flight when steps overlap, and pinning memory for each
/// step would cost more than the step's bookkeeping.
final class CUDATokenStaging: @unchecked Sendable {
    /// A buffer and the event after its last copy.
    struct Slot: @unchecked Sendable {
        let buffer: PinnedBuffer
        let copied: CUDAEvent
    }

    private let device: CUDADevice
    private let free = Mutex<[Slot]>([])

    init(device: CUDADevice) { self.device = device }

    /// A slot of at least `bytes` (one kept, or a new one of at least 4 KiB).
    func take(bytes: Int) throws -> Slot {
        if let slot = free.withLock({ slots -> Slot? in
            guard let i = slots.firstIndex(where: { $0.buffer.bytes >= bytes }) else { return nil }
            return slots.remove(at: i)
        }) {
            // Its last copy may be queued still: wait for it before the slot is rewritten.
            try slot.copied.synchronize()
            return slot
        }
        return Slot(buffer: try device.allocatePinned(max(bytes, 4096)), copied: try device.makeEvent())
    }

    /// Keeps `slot` for later steps.
    func give(_ slot: Slot) { free.withLock { $0.append(slot) } }
}
