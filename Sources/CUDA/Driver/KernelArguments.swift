/// The parameter list of a kernel launch: each value is copied into storage the launch points at.
public struct KernelArguments {
    // Every kernel parameter is a pointer, an int, a long or a float: each gets one 8-byte slot,
    // so building the list costs one small array rather than an allocation per argument (a
    // decode step launches several hundred kernels).
    private var slots: [UInt64] = []

    public init() { slots.reserveCapacity(20) }

    /// Appends a device pointer.
    public mutating func add(_ p: CUdeviceptr) { append(p) }
    /// Appends a 32-bit integer (C `int`).
    public mutating func add(_ v: Int32) { append(v) }
    /// Appends an `int` from a Swift `Int`.
    public mutating func add(int v: Int) { append(Int32(truncatingIfNeeded: v)) }
    /// Appends a `float`.
    public mutating func add(_ v: Float) { append(v) }

    /// Appends any plain value of at most 8 bytes, byte for byte.
    public mutating func add<T>(raw v: T) { append(v) }

    private mutating func append<T>(_ v: T) {
        precondition(MemoryLayout<T>.size <= 8, "a kernel argument of \(MemoryLayout<T>.size) bytes")
        var slot: UInt64 = 0
        withUnsafeMutableBytes(of: &slot) { $0.storeBytes(of: v, as: T.self) }
        slots.append(slot)
    }

    func withPointers<R>(_ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>) throws -> R) throws -> R {
        var values = slots
        return try values.withUnsafeMutableBufferPointer { v in
            try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max(1, v.count)) { pointers in
                for i in 0..<v.count { pointers[i] = UnsafeMutableRawPointer(v.baseAddress! + i) }
                return try body(pointers.baseAddress!)
            }
        }
    }
}
