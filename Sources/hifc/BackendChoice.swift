import ArgumentParser
import Backend
import CUDA
import Logging
import Server

/// `--device`: which backend runs the model. "auto" (the default) takes GPU 0 when the CUDA
/// driver finds one and the CPU backend otherwise; "cpu", "cuda" and "cuda:N" choose explicitly,
/// and a GPU that cannot be opened is then an error naming the cause.
enum BackendChoice {
    static func make(_ device: String, logger: Logger? = nil) throws -> any ComputeBackend {
        switch device {
        case "cpu":
            return CPUBackend(blas: BLASLibrary.load(logger: logger))
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
            return CPUBackend(blas: BLASLibrary.load(logger: logger))
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
