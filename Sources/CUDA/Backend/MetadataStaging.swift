/// Page-locked host memory that a step's metadata passes through on its way to the device: the
/// host writes it, one asynchronous copy on the stream takes it to its device buffer, and an
/// event recorded after the copy says when the memory may be written again. So the host waits
/// only for this staging's previous copy (and the work queued before that), not for the stream to
/// drain, and a step can be queued while the step before it still runs (steps launched ahead).
final class MetadataStaging: @unchecked Sendable {
    // Used from the thread that runs the model's steps, one step at a time.
    private let device: CUDADevice
    private var pinned: PinnedBuffer?
    /// Recorded after each copy out of `pinned`.
    private let copied: CUDAEvent

    init(device: CUDADevice) throws {
        self.device = device
        copied = try device.makeEvent()
    }

    /// Queues the copy of `flat` to `destination` on `stream`, after waiting for this staging's
    /// previous copy, and answers true; false, with nothing queued, when the driver refuses the
    /// page-locked memory (which grows to the next power of two of what an upload needs, at least
    /// 64 KiB).
    func upload(_ flat: [Int32], to destination: CUdeviceptr, on stream: CUDAStream) throws -> Bool {
        let bytes = flat.count * 4
        try copied.synchronize()
        if (pinned?.bytes ?? 0) < bytes {
            pinned = nil
            pinned = try? device.allocatePinned(StepGraphShape.powerOfTwo(atLeast: max(1 << 16, bytes)))
        }
        guard let pinned else { return false }
        flat.withUnsafeBytes { pinned.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        try stream.copy(from: UnsafeRawPointer(pinned.pointer), to: destination, bytes: bytes)
        try copied.record(on: stream)
        return true
    }
}
