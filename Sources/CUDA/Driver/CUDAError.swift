/// What went wrong in the CUDA layer. Every failing call is named, with NVIDIA's own error text.
public enum CUDAError: Error, CustomStringConvertible, Sendable {
    /// A shared library was not found; `tried` lists every path that was attempted.
    case libraryNotFound(library: String, tried: [String], reasons: [String])
    /// A library was found but lacks a symbol this code needs (too old a version).
    case missingSymbol(library: String, symbol: String)
    /// A CUDA driver call returned an error status.
    case driver(call: String, code: Int32, message: String)
    /// An NVRTC call failed; `log` holds the compiler's log where there is one.
    case nvrtc(call: String, code: Int32, message: String, log: String)
    /// A cuBLAS call returned an error status.
    case cublas(call: String, code: Int32, message: String)
    /// A cuFile call failed.
    case cufile(call: String, code: Int32, message: String)
    /// No CUDA device with this ordinal exists.
    case noSuchDevice(ordinal: Int, count: Int)
    /// A kernel source file could not be found or read.
    case kernelSource(name: String, detail: String)
    /// A kernel function is not in its compiled module.
    case missingKernel(name: String)
    /// Arguments that cannot describe a valid operation (sizes, dtypes, ranges).
    case invalidArgument(String)
    /// A host-side I/O call (open, pread, pwrite) of the fallback path failed.
    case io(call: String, path: String, errno: Int32)

    public var description: String {
        switch self {
        case let .libraryNotFound(library, tried, reasons):
            var text = "CUDA library \(library) not found; tried:"
            for (path, reason) in zip(tried, reasons) { text += "\n  \(path): \(reason)" }
            return text + "\n(set CUDA_HOME or HIFC_CUDA_LIBRARY_PATH, or install the library)"
        case let .missingSymbol(library, symbol):
            return "\(library) has no symbol \(symbol) (the library is too old for HiFC)"
        case let .driver(call, code, message):
            return "\(call) failed: CUDA error \(code) (\(message))"
        case let .nvrtc(call, code, message, log):
            return "\(call) failed: NVRTC error \(code) (\(message))" + (log.isEmpty ? "" : "\n\(log)")
        case let .cublas(call, code, message):
            return "\(call) failed: cuBLAS status \(code) (\(message))"
        case let .cufile(call, code, message):
            return "\(call) failed: cuFile error \(code) (\(message))"
        case let .noSuchDevice(ordinal, count):
            return "no CUDA device \(ordinal): this machine has \(count)"
        case let .kernelSource(name, detail):
            return "kernel source \(name): \(detail)"
        case let .missingKernel(name):
            return "kernel \(name) is not in its compiled module"
        case let .invalidArgument(text):
            return "invalid CUDA operation: \(text)"
        case let .io(call, path, errno):
            return "\(call) on \(path) failed: \(String(cString: strerror(errno)))"
        }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
