import CPUKernels
import Foundation
import HiFCCore

/// The CPU backend's KV pool: one 4 KiB-aligned host allocation of f32, fp8 (E4M3 with scales) or
/// bf16 blocks, each block starting on a 4 KiB boundary, so the flash store can O_DIRECT straight from
/// and into it.
public final class CPUKVCachePool: KVCachePool, @unchecked Sendable {
    public let layout: KVBlockLayout
    public let blockCount: Int
    public let blockStride: Int
    /// Start of block 0.
    public let base: UnsafeMutableRawPointer

    /// The KV dtypes the CPU kernels read and write.
    public static let dtypes: [KVDType] = [.float32, .fp8e4m3, .bfloat16]

    /// Allocates `blocks` zeroed blocks of `layout` (f32, fp8e4m3 or bf16).
    public init(layout: KVBlockLayout, blocks: Int) throws(BackendError) {
        guard Self.dtypes.contains(layout.dtype) else {
            throw .badBlock(
                detail:
                    "the CPU backend keeps KV in float32 (--kv-dtype auto), fp8e4m3 (--kv-dtype fp8) or bfloat16 (--kv-dtype bf16), not \(layout.dtype)"
            )
        }
        guard blocks > 0 else { throw .badBlock(detail: "a pool needs at least one block, not \(blocks)") }
        self.layout = layout
        blockCount = blocks
        blockStride = layout.blockStride
        let (total, overflow) = blockStride.multipliedReportingOverflow(by: blocks)
        var raw: UnsafeMutableRawPointer?
        guard !overflow, posix_memalign(&raw, 4096, total) == 0, let raw else {
            throw .outOfMemory(what: "a KV pool of \(blocks) blocks", bytes: overflow ? Int.max : total)
        }
        memset(raw, 0, total)
        base = raw
    }

    deinit { free(base) }

    public func copyBlock(_ block: Int, to destination: UnsafeMutableRawBufferPointer) throws {
        try checkBlock(block, bytes: destination.count)
        destination.baseAddress!.copyMemory(from: base + block * blockStride, byteCount: layout.blockBytes)
    }

    public func copyBlock(_ block: Int, from source: UnsafeRawBufferPointer) throws {
        try checkBlock(block, bytes: source.count)
        (base + block * blockStride).copyMemory(from: source.baseAddress!, byteCount: layout.blockBytes)
    }

    public func address(ofBlock block: Int) throws -> KVBlockAddress {
        try checkBlock(block, bytes: layout.blockBytes)
        return .host(base + block * blockStride)
    }
}

extension CPUKVCachePool {
    /// Where `layer`'s K and V are, as the C kernels read them.
    func kernelLayer(_ layer: Int) -> hifc_kv_layer {
        let scaled = layout.dtype.isScaled
        return hifc_kv_layer(
            base: base.assumingMemoryBound(to: UInt8.self), block_stride: blockStride,
            key_offset: layout.elementOffset(layer: layer, value: false, token: 0) * layout.dtype.size,
            value_offset: layout.elementOffset(layer: layer, value: true, token: 0) * layout.dtype.size,
            key_scale_offset: scaled ? layout.scaleOffset(layer: layer, value: false, token: 0) : 0,
            value_scale_offset: scaled ? layout.scaleOffset(layer: layer, value: true, token: 0) : 0,
            block_tokens: Int32(layout.blockTokens), kv_heads: Int32(layout.kvHeads), head_dim: Int32(layout.headDim),
            dtype: Int32((layout.dtype == .fp8e4m3 ? HIFC_KV_FP8_E4M3 : layout.dtype == .bfloat16 ? HIFC_KV_BF16 : HIFC_KV_F32).rawValue))
    }
}
