/// Device memory that is freed when the last reference goes.
public final class DeviceBuffer: @unchecked Sendable {
    // The address is immutable; what lives there is ordered by streams, not by Swift.
    /// The device address.
    public let address: CUdeviceptr
    /// Size in bytes.
    public let bytes: Int
    let device: CUDADevice

    init(device: CUDADevice, bytes: Int) throws {
        guard bytes > 0 else { throw CUDAError.invalidArgument("allocation of \(bytes) bytes") }
        self.device = device
        self.bytes = bytes
        try device.makeCurrent()
        var p: CUdeviceptr = 0
        try device.api.check(device.api.cuMemAlloc(&p, bytes), "cuMemAlloc(\(bytes) bytes)")
        address = p
    }

    deinit {
        _ = device.api.cuCtxSetCurrent(device.context)
        _ = device.api.cuMemFree(address)
    }

    /// Copies `values` into the start of this buffer, synchronously.
    public func upload<T>(_ values: [T]) throws {
        let n = values.count * MemoryLayout<T>.stride
        guard n <= bytes else { throw CUDAError.invalidArgument("upload of \(n) bytes into a \(bytes)-byte buffer") }
        try values.withUnsafeBytes { try device.copy(from: $0.baseAddress!, to: address, bytes: n) }
    }

    /// Reads `count` values of type `T` from the start of this buffer, synchronously.
    public func download<T>(_ type: T.Type, count: Int) throws -> [T] {
        let n = count * MemoryLayout<T>.stride
        guard n <= bytes else { throw CUDAError.invalidArgument("download of \(n) bytes from a \(bytes)-byte buffer") }
        return try [T](unsafeUninitializedCapacity: count) { buf, initialized in
            try device.copy(from: address, to: UnsafeMutableRawPointer(buf.baseAddress!), bytes: n)
            initialized = count
        }
    }
}
