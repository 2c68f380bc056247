import Foundation

/// Reuses device allocations between ops: `cuMemAlloc`/`cuMemFree` are slow and `cuMemFree`
/// synchronises the device, while a forward pass allocates the same sizes every step.
///
/// Safe because every op runs on the one compute stream: memory given back while kernels that
/// use it are still queued is only handed to work queued after them on that stream.
final class DeviceMemoryCache: @unchecked Sendable {
    // Guarded by `lock`.
    private let device: CUDADevice
    private var free: [Int: [DeviceBuffer]] = [:]
    private let lock = NSLock()
    private let trimsWhenFull: Bool

    /// A cache on `device`. `trimsWhenFull`: when an allocation runs out of memory, free every
    /// cached buffer and try again; a cache whose buffers CUDA graphs have captured must not.
    init(device: CUDADevice, trimsWhenFull: Bool = true) {
        self.device = device
        self.trimsWhenFull = trimsWhenFull
    }

    /// Sizes are rounded up so that nearby sizes share buffers: to 512 bytes below 1 MiB, to
    /// 2 MiB above.
    static func bucket(_ bytes: Int) -> Int {
        bytes < (1 << 20) ? max(512, (bytes + 511) & ~511) : (bytes + (1 << 21) - 1) & ~((1 << 21) - 1)
    }

    /// A buffer of at least `bytes` bytes.
    func take(_ bytes: Int) throws -> DeviceBuffer {
        let size = DeviceMemoryCache.bucket(bytes)
        lock.lock()
        if var list = free[size], let b = list.popLast() {
            free[size] = list
            lock.unlock()
            return b
        }
        lock.unlock()
        do {
            return try device.allocate(size)
        } catch  where trimsWhenFull {
            // Out of memory: drop every cached buffer and try once more.
            lock.lock()
            free.removeAll()
            lock.unlock()
            return try device.allocate(size)
        }
    }

    /// Returns a buffer for reuse.
    func give(_ buffer: DeviceBuffer) {
        lock.lock()
        free[buffer.bytes, default: []].append(buffer)
        lock.unlock()
    }
}
