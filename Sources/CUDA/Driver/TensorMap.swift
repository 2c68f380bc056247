/// A tensor map (the driver's 128-byte `CUtensorMap`) in device memory: how a Hopper kernel's
/// bulk tensor copies (TMA, `cp.async.bulk.tensor`) see a strided array in global memory, so that
/// one thread moves a whole box of it into shared memory, swizzled as the warpgroup MMAs read it.
/// Encoded once on the host by the driver and uploaded; kernels take its address.
public final class TensorMap: @unchecked Sendable {
    // Immutable after init; the kernels only read the map.
    /// The map in device memory (64-byte aligned, as the copies ask: allocations are 256).
    public let buffer: DeviceBuffer

    /// An element type of the mapped array (`CUtensorMapDataType`).
    public enum Element: Int32, Sendable {
        case bfloat16 = 9
    }

    /// Bytes of one encoded map (`CU_TENSOR_MAP_NUM_QWORDS` · 8).
    static let bytes = 128

    /// Maps the array at `base`: `dims` elements along each dimension, innermost first, `strides`
    /// bytes between neighbours along each dimension after the first (multiples of 16), copied
    /// in boxes of `box` elements whose innermost row is 128 bytes, stored in shared memory with
    /// the 128-byte swizzle (16-byte chunk c of row r at c XOR (r mod 8)); elements outside
    /// `dims` arrive as zeros.
    public init(device: CUDADevice, element: Element, base: CUdeviceptr, dims: [Int], strides: [Int], box: [Int]) throws {
        let api = device.api
        guard let encode = api.cuTensorMapEncodeTiled else {
            throw CUDAError.invalidArgument("tensor map: this CUDA driver lacks cuTensorMapEncodeTiled (CUDA 12 or later)")
        }
        guard (1...5).contains(dims.count), strides.count == dims.count - 1, box.count == dims.count else {
            throw CUDAError.invalidArgument("tensor map: \(dims.count) dims, \(strides.count) strides and \(box.count) box sizes")
        }
        guard strides.allSatisfy({ $0 > 0 && $0 % 16 == 0 }), box.allSatisfy({ (1...256).contains($0) }), base % 16 == 0 else {
            throw CUDAError.invalidArgument("tensor map: strides \(strides) (multiples of 16 bytes), box \(box) (1 to 256 each)")
        }
        var map = [UInt8](repeating: 0, count: Self.bytes)
        let globalDims = dims.map { UInt64($0) }
        let globalStrides = strides.map { UInt64($0) }
        let boxDims = box.map { UInt32($0) }
        let elementStrides = [UInt32](repeating: 1, count: dims.count)
        // 128-byte swizzle, L2 promotion of 256 bytes, zeros out of bounds (interleave none).
        let status = map.withUnsafeMutableBytes { m in
            encode(
                m.baseAddress!, element.rawValue, UInt32(dims.count), UnsafeMutableRawPointer(bitPattern: UInt(base)), globalDims,
                globalStrides, boxDims, elementStrides, 0, 3, 3, 0)
        }
        try api.check(status, "cuTensorMapEncodeTiled(dims \(dims), strides \(strides), box \(box))")
        buffer = try device.allocate(Self.bytes)
        try buffer.upload(map)
    }

    /// The map's device address, a kernel argument.
    public var address: CUdeviceptr { buffer.address }
}
