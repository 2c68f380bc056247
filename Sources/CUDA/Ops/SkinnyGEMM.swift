import HiFCCore

/// Decode-sized matrix products (`Sources/CUDA/Kernels/gemv.cu`).
///
/// At up to 16 rows a product reads every weight once and does little else, so it is bound by
/// the weight read. The kernel streams weights with 16-byte loads and does the arithmetic on the
/// tensor cores (`mma.sync` m16n8k16, bf16 in, fp32 accumulation); on the H100 it reads an 8B
/// Llama layer's weights at 1.04–1.05x the copy roofline for m ≤ 8 and 1.10x at m = 16, where
/// cuBLAS takes 1.10–1.14x (bench/results/gemv-h100.md).
extension CUDAKernels {
    /// The most rows (tokens) `skinnyLinear` takes.
    public static let skinnyGEMMMaxRows = 16

    /// Whether `skinnyLinear` takes a product of this shape at these addresses.
    public static func skinnyGEMMAccepts(m: Int, n: Int, k: Int, x: CUdeviceptr, w: CUdeviceptr) -> Bool {
        m >= 1 && m <= skinnyGEMMMaxRows && n >= 1 && n <= Int(Int32.max) && k >= 8 && k % 8 == 0
            && k <= Int(Int32.max) && x % 16 == 0 && w % 16 == 0
    }

    /// The kernel, the output features per CTA and the warps per CTA for a shape.
    ///
    /// From the H100 sweeps (bench/results/gemv-h100.md): at m ≤ 8 one token tile, two 32-k
    /// chunks per step and 16 warps won or tied on every shape except the LM head (≥ 16 CTAs
    /// per SM), where four chunks per step were 1% ahead, consistently over two runs; at
    /// m ≤ 16 two token tiles and two feature tiles per CTA with 16 warps had the best sum over
    /// the seven shapes and over an 8B layer.
    static func skinnyGEMMConfiguration(m: Int, n: Int, multiprocessors: Int) -> (kernel: String, features: Int, warps: Int) {
        if m <= 8 {
            return ((n + 15) / 16 >= 16 * multiprocessors ? "gemv_bf16_t1r1u4p1h1" : "gemv_bf16_t1r1u2p1h1", 16, 16)
        }
        return ("gemv_bf16_t2r2u2p1h1", 32, 16)
    }

    /// `y[m, n] = x[m, k] · w[n, k]ᵀ` for 1 ≤ m ≤ 16: x and w bf16 (row-major, dense, 16-byte
    /// aligned), y fp32, fp32 accumulation; every element of y is written. `k` must be a multiple
    /// of 8 (the kernel reads 8 elements at a time); `n` is free.
    public func skinnyLinear(x: CUdeviceptr, w: CUdeviceptr, y: CUdeviceptr, m: Int, n: Int, k: Int, stream: CUDAStream) throws {
        guard m >= 1, m <= CUDAKernels.skinnyGEMMMaxRows else {
            throw CUDAError.invalidArgument("skinny linear: m=\(m) rows; it takes 1...\(CUDAKernels.skinnyGEMMMaxRows) (use cuBLAS above)")
        }
        guard n >= 1, n <= Int(Int32.max), k >= 8, k <= Int(Int32.max), k % 8 == 0 else {
            throw CUDAError.invalidArgument("skinny linear: n=\(n), k=\(k); needs n >= 1 and k a positive multiple of 8")
        }
        guard x % 16 == 0, w % 16 == 0 else {
            throw CUDAError.invalidArgument("skinny linear: x at 0x\(String(x, radix: 16)), w at 0x\(String(w, radix: 16)); both must be 16-byte aligned")
        }
        let c = CUDAKernels.skinnyGEMMConfiguration(m: m, n: n, multiprocessors: library.device.info.multiprocessors)
        var a = KernelArguments()
        a.add(x); a.add(w); a.add(y); a.add(int: m); a.add(int: n); a.add(int: k)
        try library.function(c.kernel).launch(grid: ((n + c.features - 1) / c.features, 1, 1), block: (32 * c.warps, 1, 1), stream: stream, arguments: a)
    }
}
