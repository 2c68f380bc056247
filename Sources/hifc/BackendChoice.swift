import ArgumentParser
import Backend
import CUDA
import Logging
import Server

/// `--device`: which backend runs the model. "auto" (the default) takes GPU 0 when the CUDA
/// driver finds one and the CPU backend otherwise; "cpu", "cuda" and "cuda:N" choose explicitly,
/// and a GPU that cannot be opened is then an error naming the cause. `threads` (`--threads`;
/// nil: the physical cores) sizes the CPU backend's pool; `dequantize` makes it decode GGUF's
/// quantized weights to f32 at load (`--dequantize`, for accuracy checks of its integer kernels).
enum BackendChoice {
    static func make(
        _ device: String, threads: Int? = nil, blas: Bool = true, dequantize: Bool = false, logger: Logger? = nil
    ) throws -> any ComputeBackend {
        func cpu() throws -> CPUBackend {
            if let threads, threads < 1 { throw ValidationError("--threads must be positive") }
            let pool = CPUBackend.configureProcess(threads: threads, logger: logger)
            return CPUBackend(blas: blas ? BLASLibrary.load(logger: logger) : nil, pool: pool, dequantizesAtLoad: dequantize)
        }
        switch device {
        case "cpu":
            return try cpu()
        case "auto":
            do {
                let count = try CUDADevice.count()
                if count > 0 {
                    let backend = try CUDABackend(ordinal: 0)
                    logger?.info("device auto: \(backend.name), the first of \(count) GPUs")
                    return backend
                }
                logger?.info("device auto: the CUDA driver finds no GPU, running on the CPU backend")
            } catch let error as CUDAError {
                if case .libraryNotFound = error {
                    logger?.info("device auto: no CUDA driver (libcuda), running on the CPU backend")
                } else {
                    logger?.warning("device auto: GPU 0 found but unusable, running on the CPU backend: \(error)")
                }
            } catch {
                logger?.warning("device auto: GPU 0 found but unusable, running on the CPU backend: \(error)")
            }
            return try cpu()
        default:
            guard case .cuda(let ordinal) = DeviceSelection(parsing: device) else {
                throw ValidationError("--device \(device): expected auto, cpu, cuda or cuda:N")
            }
            do {
                return try CUDABackend(ordinal: ordinal)
            } catch let error as CUDAError {
                throw ValidationError("--device \(device): \(error)")
            }
        }
    }
}
