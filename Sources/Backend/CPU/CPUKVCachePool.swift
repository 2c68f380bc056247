import CPUKernels
import Foundation
import HiFCCore

/// The CPU backend's KV pool: one 4 KiB-aligned host allocation of f32 blocks, each block starting
/// on a 4 KiB boundary, so the flash store can O_DIRECT straight from and into it.
public final class CPUKVCachePool: KVCachePool, @unchecked Sendable {
    public let layout: KVBlockLayout
    public let blockCount: Int
    public let blockStride: Int
    /// Start of block 0.
    public let base: UnsafeMutableRawPointer

    /// Allocates `blocks` zeroed blocks of `layout` (which must be f32).
    public init(layout: KVBlockLayout, blocks: Int) throws(BackendError) {
        guard layout.dtype == .float32 else {
            throw .badBlock(detail: "the CPU pool stores float32 KV, not \(layout.dtype)")
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

    /// f32 elements from one block's start to the next.
    var strideElements: Int { blockStride / 4 }
    /// The pool as floats.
    var floats: UnsafeMutablePointer<Float> { base.assumingMemoryBound(to: Float.self) }

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
        hifc_kv_layer(
            base: floats, block_stride: strideElements,
            key_offset: layout.elementOffset(layer: layer, value: false, token: 0),
            value_offset: layout.elementOffset(layer: layer, value: true, token: 0),
            block_tokens: Int32(layout.blockTokens), kv_heads: Int32(layout.kvHeads), head_dim: Int32(layout.headDim))
    }
}
