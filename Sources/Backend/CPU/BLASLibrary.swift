import Foundation
import Logging

/// A CBLAS library opened at run time, so nothing has to be installed for HiFC to build or run.
///
/// Looked for, in order: the path in `HIFC_BLAS_LIBRARY`, then `libopenblas.so.0`,
/// `libopenblas.so`, `libcblas.so.3`, `libcblas.so`, `libblas.so.3`, `libblis.so.4`,
/// `libmkl_rt.so`; the first that exports `cblas_sgemm` wins. `HIFC_BLAS=off` skips the search, so
/// the C GEMM of `CPUKernels` does every product.
public struct BLASLibrary: @unchecked Sendable {
    typealias SGEMM =
        @convention(c) (
            Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
            UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32
        ) -> Void

    typealias SGEMV =
        @convention(c) (
            Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32,
            Float, UnsafeMutablePointer<Float>?, Int32
        ) -> Void

    /// The file that was opened.
    public let path: String
    let sgemm: SGEMM
    /// `cblas_sgemv` when exported: one-row products (decode at batch 1) skip GEMM's packing of
    /// the whole weight matrix.
    let sgemv: SGEMV?

    /// The library's call that sets its thread count (OpenBLAS, BLIS or MKL), when it has one.
    let threadCount: ThreadCountSetter?

    /// How a library is told its thread count.
    enum ThreadCountSetter {
        case int32(@convention(c) (Int32) -> Void)
        case int64(@convention(c) (Int64) -> Void)
    }

    /// Library names tried in order when `HIFC_BLAS_LIBRARY` is not set.
    public static let candidates = [
        "libopenblas.so.0", "libopenblas.so", "libcblas.so.3", "libcblas.so", "libblas.so.3",
        "libblis.so.4", "libmkl_rt.so",
    ]

    /// The library the environment asks for, or the first candidate found; nil for the fallback.
    public static func load(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger? = nil
    ) -> BLASLibrary? {
        if isSwitchedOff(environment: environment) {
            logger?.info("HIFC_BLAS=\(environment["HIFC_BLAS"] ?? ""): using the C GEMM")
            return nil
        }
        let names = environment["HIFC_BLAS_LIBRARY"].map { [$0] } ?? candidates
        for name in names {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else { continue }
            guard let symbol = dlsym(handle, "cblas_sgemm") else {
                logger?.debug("\(name) has no cblas_sgemm")
                dlclose(handle)
                continue
            }
            let gemv = dlsym(handle, "cblas_sgemv").map { unsafeBitCast($0, to: SGEMV.self) }
            var setter: ThreadCountSetter?
            if let f = dlsym(handle, "openblas_set_num_threads") ?? dlsym(handle, "MKL_Set_Num_Threads") {
                setter = .int32(unsafeBitCast(f, to: (@convention(c) (Int32) -> Void).self))
            } else if let f = dlsym(handle, "bli_thread_set_num_threads") {
                setter = .int64(unsafeBitCast(f, to: (@convention(c) (Int64) -> Void).self))
            }
            return BLASLibrary(path: name, sgemm: unsafeBitCast(symbol, to: SGEMM.self), sgemv: gemv, threadCount: setter)
        }
        logger?.info("no CBLAS library found (tried \(names.joined(separator: ", "))): using the C GEMM")
        return nil
    }

    /// Whether `HIFC_BLAS` (off, 0, no or swift) asks for the C GEMM instead of a library.
    public static func isSwitchedOff(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        environment["HIFC_BLAS"].map { ["off", "0", "no", "swift"].contains($0.lowercased()) } ?? false
    }

    /// Tells the library to use `threads` threads (the CPU backend asks for one and parallelizes
    /// its calls itself, so that no second pool of threads competes for the cores). A library
    /// without such a call keeps its own setting (its environment variable, e.g.
    /// `OPENBLAS_NUM_THREADS`).
    func setThreads(_ threads: Int) {
        switch threadCount {
        case .int32(let set): set(Int32(clamping: threads))
        case .int64(let set): set(Int64(threads))
        case nil: break
        }
    }

    /// `c[m×n] = a[m×k] · b[n×k]ᵀ`, row-major, `a` and `b` contiguous, rows of `c` `ldc` apart.
    func multiplyTransposed(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        _ c: UnsafeMutablePointer<Float>, m: Int, n: Int, k: Int, ldc: Int? = nil
    ) {
        // 101 = CblasRowMajor, 111 = CblasNoTrans, 112 = CblasTrans.
        if m == 1, ldc == nil, let sgemv {
            sgemv(101, 111, Int32(n), Int32(k), 1, b, Int32(k), a, 1, 0, c, 1)
            return
        }
        sgemm(101, 111, 112, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), 0, c, Int32(ldc ?? n))
    }
}
