import CPUKernels
import Foundation

/// A weight the CPU backend keeps as GGML blocks, as its GGUF file stores them, and multiplies
/// with the integer kernels of `CPUKernels` (`hifc_gemm_quant`). Its `DeviceTensor` has the
/// weight's shape and dtype `.float32`, the type the ops compute in; only `linear`, `embedding`
/// and `download` read it.
///
/// Formats with an interleaved layout (every block format the kernels read: eight rows a block,
/// `hifc_quant_interleave`; AMX packs its prefill tiles from them too) are multiplied
/// in a copy in that layout, 2.3-4.0x as fast in prefill products and 1.3-2.1x in decode rows
/// (bench/results/cpu-vs-llamacpp.md, 2026-12-05); the file's rows stay for the row lookups (embedding,
/// download), which read only the rows they need: a mapped file's pages are given back
/// (`ReloadableMemory`) and come back from the page cache as those rows are read.
final class CPUQuantizedStorage: TensorStorage, @unchecked Sendable {
    /// The blocks (memory-mapped from the file, or stacked in memory of their own).
    let tensor: QuantizedTensor
    /// The kernels' name of the file's format.
    let fileType: Int32
    /// The kernels' name of the format the products read: the file's, or its interleaved layout.
    let kernelType: Int32
    /// The weights the products read: the file's blocks, or their interleaved copy.
    let kernelBytes: UnsafeRawPointer
    /// The interleaved copy, owned here; nil when the products read the file's blocks.
    private let interleaved: UnsafeMutableRawPointer?

    /// Keeps `tensor` when the kernels read its format (with an interleaved copy where its format
    /// has one and its rows come in eights, written by `pool`'s threads; where the memory for the
    /// copy cannot be had, the products read the file's rows, slower but the same); nil otherwise.
    init?(_ tensor: QuantizedTensor, pool: CPUThreadPool) {
        guard tensor.shape.count == 2, let type = Self.kernelType(tensor.type) else { return nil }
        self.tensor = tensor
        fileType = type
        let interleavedType = hifc_quant_interleaved_type(type)
        var memory: UnsafeMutableRawPointer?
        if interleavedType != 0, tensor.rows % 8 == 0, posix_memalign(&memory, 64, tensor.byteCount) == 0, let copy = memory {
            hifc_quant_interleave(pool.raw, type, tensor.bytes, tensor.rows, tensor.columns, copy)
            (tensor.owner as? ReloadableMemory)?.releasePages(at: tensor.bytes, count: tensor.byteCount)
            interleaved = copy
            kernelType = interleavedType
            kernelBytes = UnsafeRawPointer(copy)
        } else {
            interleaved = nil
            kernelType = type
            kernelBytes = tensor.bytes
        }
    }

    deinit { free(interleaved) }

    /// The formats with integer kernels: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K.
    static func kernelType(_ type: GGMLType) -> Int32? {
        switch type {
        case .q8_0: return Int32(HIFC_QUANT_Q8_0.rawValue)
        case .q4_0: return Int32(HIFC_QUANT_Q4_0.rawValue)
        case .q4_1: return Int32(HIFC_QUANT_Q4_1.rawValue)
        case .q5_0: return Int32(HIFC_QUANT_Q5_0.rawValue)
        case .q5_1: return Int32(HIFC_QUANT_Q5_1.rawValue)
        case .q4_K: return Int32(HIFC_QUANT_Q4_K.rawValue)
        case .q5_K: return Int32(HIFC_QUANT_Q5_K.rawValue)
        case .q6_K: return Int32(HIFC_QUANT_Q6_K.rawValue)
        default: return nil
        }
    }

    var packedBytes: Int? { tensor.byteCount }

    /// Row `row` decoded into `out` (`columns` floats).
    func dequantizeRow(_ row: Int, into out: UnsafeMutablePointer<Float>) {
        hifc_dequantize(fileType, tensor.bytes + row * tensor.rowBytes, out, tensor.columns)
    }
}

extension DeviceTensor {
    /// The GGML blocks of a weight the CPU backend kept quantized; nil for f32 tensors.
    var cpuQuantized: CPUQuantizedStorage? { storage as? CPUQuantizedStorage }
}
