/// cuBLAS (`libcublas.so.13` or `.12`), loaded by `dlopen`: the matrix products of the model.
public final class CUBLAS: @unchecked Sendable {
    // The handle is used from one stream at a time (the compute stream); cuBLAS handles are not
    // to be shared between concurrent host threads, which the backend's one compute queue ensures.
    typealias Status = Int32
    typealias Handle = OpaquePointer
    private let cublasCreate: @convention(c) (UnsafeMutablePointer<Handle?>) -> Status
    private let cublasDestroy: @convention(c) (Handle?) -> Status
    private let cublasSetStream: @convention(c) (Handle?, CUstream?) -> Status
    private let cublasGetVersion: @convention(c) (Handle?, UnsafeMutablePointer<Int32>) -> Status
    private let cublasGetStatusString: (@convention(c) (Status) -> UnsafePointer<CChar>?)?
    private let cublasGemmEx:
        @convention(c) (
            Handle?, Int32, Int32, Int32, Int32, Int32,
            UnsafeRawPointer, UInt64, Int32, Int32, UInt64, Int32, Int32,
            UnsafeRawPointer, UInt64, Int32, Int32, Int32, Int32
        ) -> Status

    /// The library the entry points came from.
    public let library: DynamicLibrary
    private let handle: Handle
    private let device: CUDADevice

    /// Opens cuBLAS and creates a handle on `device`.
    public init(device: CUDADevice) throws {
        self.device = device
        let l = try DynamicLibrary.open(anyOf: ["libcublas.so.13", "libcublas.so.12", "libcublas.so"])
        library = l
        cublasCreate = try l.function("cublasCreate_v2")
        cublasDestroy = try l.function("cublasDestroy_v2")
        cublasSetStream = try l.function("cublasSetStream_v2")
        cublasGetVersion = try l.function("cublasGetVersion_v2")
        cublasGetStatusString = l.optionalFunction("cublasGetStatusString")
        cublasGemmEx = try l.function("cublasGemmEx")
        try device.makeCurrent()
        var h: Handle?
        let status = cublasCreate(&h)
        guard status == 0, let h else {
            throw CUDAError.cublas(call: "cublasCreate", code: status, message: "cannot create a cuBLAS handle")
        }
        handle = h
    }

    deinit {
        _ = device.api.cuCtxSetCurrent(device.context)
        _ = cublasDestroy(handle)
    }

    /// The library's version ("13.0.0").
    public var version: String {
        var v: Int32 = 0
        _ = cublasGetVersion(handle, &v)
        return "\(v / 10000).\((v % 10000) / 100).\(v % 100)"
    }

    private func check(_ status: Status, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        let text = cublasGetStatusString?(status).map { String(cString: $0) } ?? "status \(status)"
        throw CUDAError.cublas(call: call(), code: status, message: text)
    }

    /// Element types of a matrix product (cudaDataType values).
    public enum Element: Int32, Sendable {
        case float32 = 0
        case bfloat16 = 14
    }

    /// `y[m, n] = x[m, k] · w[n, k]ᵀ` (+ `beta · y`), all row-major: a linear layer with HF's
    /// `[out, in]` weights. `x` and `w` are bf16; `y` is `yType`; the sum is accumulated in fp32.
    /// `ldx`, `ldw`, `ldy` are row strides in elements (default: dense).
    public func linear(
        x: CUdeviceptr, w: CUdeviceptr, y: CUdeviceptr, yType: Element,
        m: Int, n: Int, k: Int, ldx: Int? = nil, ldw: Int? = nil, ldy: Int? = nil,
        beta: Float = 0, stream: CUDAStream
    ) throws {
        guard m > 0, n > 0, k > 0 else { throw CUDAError.invalidArgument("linear with m=\(m) n=\(n) k=\(k)") }
        try device.makeCurrent()
        try check(cublasSetStream(handle, stream.handle), "cublasSetStream")
        var alpha: Float = 1
        var betaValue = beta
        // cuBLAS is column-major: a row-major [m, n] y is a column-major [n, m] yᵀ = w · xᵀ.
        let status = withUnsafePointer(to: &alpha) { a in
            withUnsafePointer(to: &betaValue) { b in
                cublasGemmEx(
                    handle, 1 /* CUBLAS_OP_T */, 0 /* CUBLAS_OP_N */, Int32(n), Int32(m), Int32(k),
                    a, w, Element.bfloat16.rawValue, Int32(ldw ?? k),
                    x, Element.bfloat16.rawValue, Int32(ldx ?? k),
                    b, y, yType.rawValue, Int32(ldy ?? n),
                    68 /* CUBLAS_COMPUTE_32F */, -1 /* CUBLAS_GEMM_DEFAULT */)
            }
        }
        try check(status, "cublasGemmEx(m=\(m), n=\(n), k=\(k))")
    }
}
