import HiFCCore

/// One way to launch the skinny GEMM of `gemv.cu`: the kernel, the output features each CTA
/// owns, and its warps.
struct SkinnyGEMMLaunch: Hashable, Sendable {
    /// The kernel's name (`gemv_bf16_t<token tiles>r<feature tiles>u<chunks>p1h1`, `_b8` where it
    /// takes at most 8 warps).
    let kernel: String
    /// Output features per CTA (16 per feature tile).
    let features: Int
    /// Warps per CTA.
    let warps: Int

    /// m ≤ 8, four 32-k chunks a step: the usual choice for m ≤ 8.
    static let oneTileFourChunks = SkinnyGEMMLaunch(kernel: "gemv_bf16_t1r1u4p1h1", features: 16, warps: 8)
    /// m ≤ 8, two chunks a step: fewer registers, so twice as many CTAs fit on a multiprocessor.
    static let oneTileTwoChunks = SkinnyGEMMLaunch(kernel: "gemv_bf16_t1r1u2p1h1", features: 16, warps: 8)
    /// m ≤ 16, two token and two feature tiles, 16 warps: one CTA fills a multiprocessor's registers.
    static let twoTilesSixteenWarps = SkinnyGEMMLaunch(kernel: "gemv_bf16_t2r2u2p1h1", features: 32, warps: 16)
    /// The same kernel with 8 warps: two CTAs fit on a multiprocessor.
    static let twoTilesEightWarps = SkinnyGEMMLaunch(kernel: "gemv_bf16_t2r2u2p1h1", features: 32, warps: 8)
    /// m ≤ 16, four feature tiles, one chunk a step, 4 warps: x is read once per 64 features,
    /// and four CTAs fit on a multiprocessor.
    static let fourTilesFourWarps = SkinnyGEMMLaunch(kernel: "gemv_bf16_t2r4u1p1h1_b8", features: 64, warps: 4)
    /// The same kernel with 8 warps (its most).
    static let fourTilesEightWarps = SkinnyGEMMLaunch(kernel: "gemv_bf16_t2r4u1p1h1_b8", features: 64, warps: 8)

    /// Every launch `CUDAKernels.skinnyGEMMLaunch` can choose.
    static let all: [SkinnyGEMMLaunch] = [
        .oneTileFourChunks, .oneTileTwoChunks, .twoTilesSixteenWarps, .twoTilesEightWarps,
        .fourTilesFourWarps, .fourTilesEightWarps,
    ]

    /// CTAs of an n-feature product.
    func blocks(n: Int) -> Int { (n + features - 1) / features }

    /// The gated form of this launch (`_silu`, gemv.cu): the same CTAs, each writing
    /// silu(gate)·up for half as many output features.
    var gated: SkinnyGEMMLaunch { SkinnyGEMMLaunch(kernel: kernel + "_silu", features: features / 2, warps: warps) }
    /// The rotary form (`_rope`): the same CTAs over a permutation of the same rows.
    var rotary: SkinnyGEMMLaunch { SkinnyGEMMLaunch(kernel: kernel + "_rope", features: features, warps: warps) }
    /// The residual form (`_res`): the same CTAs, adding the residual and writing the next norm's input.
    var residual: SkinnyGEMMLaunch { SkinnyGEMMLaunch(kernel: kernel + "_res", features: features, warps: warps) }
    /// This launch over x rows still to be scaled (`_rs`, after a residual form).
    var rowScaled: SkinnyGEMMLaunch { SkinnyGEMMLaunch(kernel: kernel + "_rs", features: features, warps: warps) }
}

/// x rows of a skinny GEMM still to be scaled, each by `1 / sqrt(mean square + epsilon)`: the
/// `normed` rows of a residual form (`CUDAKernels.skinnyResidualLinear`), whose CTAs left each
/// row's sums of squares at `squares` (fp32 `[16][parts]`: room for 16 rows whatever the batch).
public struct SkinnyRowScale: Sendable, Equatable {
    /// The sums of squares, fp32 `[16][parts]` (row-major; rows past the batch unwritten).
    public let squares: CUdeviceptr
    /// CTAs of the residual form that wrote them.
    public let parts: Int
    /// The norm's epsilon.
    public let epsilon: Float

    /// Bytes of the sums of squares for a residual form of `parts` CTAs.
    public static func squaresBytes(parts: Int) -> Int { parts * CUDAKernels.skinnyGEMMMaxRows * 4 }
}

/// What a skinny GEMM does with its sums (gemv.cu's forms).
enum SkinnyGEMMForm {
    /// Writes them (fp32 `[m, n]`).
    case plain
    /// silu(gate)·up of a fused gate|up product (bf16 `[m, n/2]`).
    case gated
    /// Rotates and stores a fused q|k|v product into a bf16 pool, as `ropeAndWriteKV` would.
    case rotary
    /// Adds the residual and writes the sum and the next norm's input before its 1/rms factor.
    case residual

    /// The launcher's name in messages.
    var launcher: String {
        switch self {
        case .plain: "skinny linear"
        case .gated: "skinny gated linear"
        case .rotary: "skinny rotary linear"
        case .residual: "skinny residual linear"
        }
    }
}

/// Decode-sized matrix products (`Sources/CUDA/Kernels/gemv.cu`).
///
/// At up to 16 rows a product reads every weight once and does little else, so it is bound by
/// the weight read. The kernel streams weights with 16-byte loads and does the arithmetic on the
/// tensor cores (`mma.sync` m16n8k16, bf16 in, fp32 accumulation). On the H100 it reads an 8B
/// Llama layer's weights at 1.04–1.05x the copy roofline for m ≤ 8 and 1.10x at m = 16, where
/// cuBLAS takes 1.10–1.14x; on the H200 the launches chosen below take 1.07x and 1.20x by the
/// sweep's times (bench/results/gemv-h100.md, gemv-h200.md).
extension CUDAKernels {
    /// The most rows (tokens) `skinnyLinear` takes.
    public static let skinnyGEMMMaxRows = 16

    /// Whether `skinnyLinear` takes a product of this shape at these addresses.
    public static func skinnyGEMMAccepts(m: Int, n: Int, k: Int, x: CUdeviceptr, w: CUdeviceptr) -> Bool {
        m >= 1 && m <= skinnyGEMMMaxRows && n >= 1 && n <= Int(Int32.max) && k >= 8 && k % 8 == 0
            && k <= Int(Int32.max) && x % 16 == 0 && w % 16 == 0
    }

    /// How many CTAs of each skinny-GEMM launch fit on one multiprocessor, from the driver.
    static func skinnyGEMMResidency(library: KernelLibrary) throws -> [SkinnyGEMMLaunch: Int] {
        var resident: [SkinnyGEMMLaunch: Int] = [:]
        for launch in SkinnyGEMMLaunch.all {
            resident[launch] = try library.function(launch.kernel).residentBlocksPerMultiprocessor(threads: 32 * launch.warps)
        }
        return resident
    }

    /// The launch for an m-row, n-feature product, given how many CTAs of each launch fit on a
    /// multiprocessor (`resident`).
    ///
    /// The products of a decode step are a few waves of CTAs at most, and each wave lasts a few
    /// microseconds, so a launch just over one wave spends its second wave on a mostly idle GPU.
    /// Where the usual launch would be such a launch and a leaner one fits in one wave, the lean
    /// one is taken. From the sweeps of every launch on both GPUs (bench/results/gemv-h100.md,
    /// gemv-h200.md): at m ≤ 8, four chunks a step with 8 warps was the fastest on the H200 for
    /// every 8B shape but qkv and within 2% of the fastest on the H100; on qkv (384 CTAs, 1.5
    /// waves of it on 132 multiprocessors) two chunks a step (one wave) took 8% less time on the
    /// H200 and 2% less on the H100. At m ≤ 16, 16 warps were fastest where they fit in one wave
    /// (o, down: 128 CTAs); on qkv 8 warps took 15% less time on the H200 and 6% less on the
    /// H100; with many waves (gate_up, the LM head) 8 warps took 2–4% less on the H200 and 1–2%
    /// more on the H100. Where n is large enough that four-tile CTAs still give every
    /// multiprocessor 12 warps or more, four tiles (x read once per 64 features) were faster on
    /// the H200: gate_up 62.4 against 63.9 us with 4 warps, the LM head 254.9 against 271.0, a
    /// 14336-row product 32.8 against 34.3 with 8 warps in one wave (gemv-h200.md, second sweep).
    static func skinnyGEMMLaunch(m: Int, n: Int, multiprocessors: Int, resident: [SkinnyGEMMLaunch: Int]) -> SkinnyGEMMLaunch {
        func fitsOneWave(_ launch: SkinnyGEMMLaunch) -> Bool {
            launch.blocks(n: n) <= max(1, resident[launch] ?? 1) * multiprocessors
        }
        if m <= 8 {
            let usual = SkinnyGEMMLaunch.oneTileFourChunks
            let lean = SkinnyGEMMLaunch.oneTileTwoChunks
            return !fitsOneWave(usual) && fitsOneWave(lean) ? lean : usual
        }
        if fitsOneWave(.twoTilesSixteenWarps) { return .twoTilesSixteenWarps }
        let busy = 12 * multiprocessors
        let four = SkinnyGEMMLaunch.fourTilesFourWarps
        if four.blocks(n: n) * four.warps >= busy { return four }
        let fourEight = SkinnyGEMMLaunch.fourTilesEightWarps
        if fourEight.blocks(n: n) * fourEight.warps >= busy && fitsOneWave(fourEight) { return fourEight }
        return .twoTilesEightWarps
    }

    /// `y[m, n] = x[m, k] · w[n, k]ᵀ` for 1 ≤ m ≤ 16: x and w bf16 (row-major, dense, 16-byte
    /// aligned), y fp32, fp32 accumulation; every element of y is written. `k` must be a multiple
    /// of 8 (the kernel reads 8 elements at a time); `n` is free.
    /// With `rowScale`, x's rows are a residual form's `normed` and y gets their product once
    /// each row is scaled.
    public func skinnyLinear(
        x: CUdeviceptr, w: CUdeviceptr, y: CUdeviceptr, m: Int, n: Int, k: Int, rowScale: SkinnyRowScale? = nil, stream: CUDAStream
    ) throws {
        try launchSkinnyGEMM(x: x, w: w, y: y, m: m, n: n, k: k, form: .plain, rowScale: rowScale, stream: stream)
    }

    /// The product that ends a block, its residual add and the next norm but for the norm's 1/rms
    /// factor, for 1 ≤ m ≤ 16: `sum = residual + x · wᵀ` (fp32 `[m, n]`), `normed = bf16(sum ·
    /// normWeight)` (`[m, n]`) and each CTA's sums of squares of `sum` by row into `squares`
    /// (`SkinnyRowScale.squaresBytes(parts:)` bytes). Returns the row scale that the next product
    /// takes with `normed` as its x (`skinnyLinear`, `skinnySiluGatedLinear`,
    /// `skinnyRotaryLinear`), so that no add + RMSNorm kernel runs between the two products.
    public func skinnyResidualLinear(
        x: CUdeviceptr, w: CUdeviceptr, m: Int, n: Int, k: Int, residual: CUdeviceptr, sum: CUdeviceptr, normWeight: CUdeviceptr,
        normed: CUdeviceptr, squares: CUdeviceptr, epsilon: Float, stream: CUDAStream
    ) throws -> SkinnyRowScale {
        guard n % 8 == 0, [residual, sum, normWeight, normed, squares].allSatisfy({ $0 % 16 == 0 }) else {
            throw CUDAError.invalidArgument(
                "skinny residual linear: n=\(n) features (the next product's k; must be a multiple of 8) and every tensor 16-byte aligned")
        }
        let parts = skinnyGEMMParts(m: m, n: n)
        try launchSkinnyGEMM(x: x, w: w, y: 0, m: m, n: n, k: k, form: .residual, stream: stream) { a in
            a.add(residual)
            a.add(sum)
            a.add(normWeight)
            a.add(normed)
            a.add(squares)
        }
        return SkinnyRowScale(squares: squares, parts: parts, epsilon: epsilon)
    }

    /// CTAs of the plain launch of an m-row, n-feature product: the residual form's `parts`.
    public func skinnyGEMMParts(m: Int, n: Int) -> Int { plainSkinnyGEMMLaunch(m: m, n: n).blocks(n: n) }

    /// The plain launch of an m-row, n-feature product on this device, whose CTAs every form shares.
    private func plainSkinnyGEMMLaunch(m: Int, n: Int) -> SkinnyGEMMLaunch {
        CUDAKernels.skinnyGEMMLaunch(m: m, n: n, multiprocessors: library.device.info.multiprocessors, resident: skinnyGEMMResidency)
    }

    /// `out[m, n/2] = silu(g) · u` (bf16) for `[g | u] = x[m, k] · w[n, k]ᵀ`, w the fused gate|up
    /// weight (gate rows first, n even), 1 ≤ m ≤ 16: the sums `skinnyLinear` would write, put
    /// through `siluMul` without leaving the kernel, so the result is the same to the bit.
    /// `rowScale` as for `skinnyLinear`.
    public func skinnySiluGatedLinear(
        x: CUdeviceptr, w: CUdeviceptr, out: CUdeviceptr, m: Int, n: Int, k: Int, rowScale: SkinnyRowScale? = nil, stream: CUDAStream
    ) throws {
        guard n % 2 == 0 else { throw CUDAError.invalidArgument("skinny gated linear: n=\(n) gate|up rows; it must be even") }
        try launchSkinnyGEMM(x: x, w: w, y: out, m: m, n: n, k: k, form: .gated, rowScale: rowScale, stream: stream)
    }

    /// `ropeAndWriteKV` of `x[m, k] · w[n, k]ᵀ` for 1 ≤ m ≤ 16, w the fused q|k|v weight (n =
    /// (heads + 2·kvHeads)·headDim rows, head dim a multiple of 16): q rotated into `qOutput`
    /// (fp32 `[m, heads·headDim]`), k rotated and v into `layer` of the bf16 pool at `slots`. The
    /// product is never written: each pair of dims to rotate is summed in one thread. An fp8 pool
    /// takes `skinnyLinear`, then `ropeAndWriteKV`: the rotary form's own fp8 coding (each CTA
    /// staging its rotated K/V, the one completing a head coding it) made 8B decode steps
    /// 0.4-1.1% slower on an H100 (bench/results/cuda-graphs-h200.md, 2026-12-06).
    public func skinnyRotaryLinear(
        x: CUdeviceptr, w: CUdeviceptr, m: Int, n: Int, k: Int, heads: Int, positions: CUdeviceptr,
        inverseFrequencies: CUdeviceptr, slots: CUdeviceptr, qOutput: CUdeviceptr, pool: CUdeviceptr,
        blockStride: Int, layer: Int, layout: KVBlockLayout, rowScale: SkinnyRowScale? = nil, stream: CUDAStream
    ) throws {
        guard try Self.kvKernelSuffix(layout, blockStride: blockStride, op: "skinny rotary linear").isEmpty else {
            throw CUDAError.invalidArgument(
                "skinny rotary linear: a \(layout.dtype) pool; the rotary form writes bf16 K/V (an fp8 pool takes skinnyLinear, then ropeAndWriteKV)")
        }
        guard layout.headDim % 16 == 0, n == (heads + 2 * layout.kvHeads) * layout.headDim else {
            throw CUDAError.invalidArgument(
                "skinny rotary linear: \(n) q|k|v rows for \(heads) + 2 x \(layout.kvHeads) heads of \(layout.headDim) (needs that many rows and a head dim that is a multiple of 16)"
            )
        }
        try launchSkinnyGEMM(x: x, w: w, y: 0, m: m, n: n, k: k, form: .rotary, rowScale: rowScale, stream: stream) { a in
            a.add(positions)
            a.add(inverseFrequencies)
            a.add(slots)
            a.add(qOutput)
            a.add(pool)
            a.add(int: heads)
            a.add(int: layout.kvHeads)
            a.add(int: layout.headDim)
            a.add(int: layer)
            a.add(int: layout.blockTokens)
            a.add(Int64Arg(blockStride / layout.dtype.size))
        }
    }

    /// Checks the shape and alignment, then launches `form` with the arguments every form starts
    /// with (x, w, y, m, n, k) followed by the ones `formArguments` adds and, with `rowScale`
    /// (the `_rs` kernels), the row scale's.
    private func launchSkinnyGEMM(
        x: CUdeviceptr, w: CUdeviceptr, y: CUdeviceptr, m: Int, n: Int, k: Int, form: SkinnyGEMMForm,
        rowScale: SkinnyRowScale? = nil, stream: CUDAStream, formArguments: (inout KernelArguments) -> Void = { _ in }
    ) throws {
        let what = form.launcher
        guard m >= 1, m <= CUDAKernels.skinnyGEMMMaxRows else {
            throw CUDAError.invalidArgument("\(what): m=\(m) rows; it takes 1...\(CUDAKernels.skinnyGEMMMaxRows) (use cuBLAS above)")
        }
        guard n >= 1, n <= Int(Int32.max), k >= 8, k <= Int(Int32.max), k % 8 == 0 else {
            throw CUDAError.invalidArgument("\(what): n=\(n), k=\(k); needs n >= 1 and k a positive multiple of 8")
        }
        guard x % 16 == 0, w % 16 == 0 else {
            throw CUDAError.invalidArgument("\(what): x at 0x\(String(x, radix: 16)), w at 0x\(String(w, radix: 16)); both must be 16-byte aligned")
        }
        // The other forms have the plain launch's CTAs over the same rows, so the plain rule and
        // residency decide for them.
        let plain = plainSkinnyGEMMLaunch(m: m, n: n)
        let (formLaunch, outputs) =
            switch form {
            case .plain: (plain, n)
            case .gated: (plain.gated, n / 2)
            case .rotary: (plain.rotary, n)
            case .residual: (plain.residual, n)
            }
        if let rowScale, form == .residual || rowScale.squares % 16 != 0 || rowScale.parts < 1 {
            throw CUDAError.invalidArgument(
                "\(what): a row scale of \(rowScale.parts) parts at 0x\(String(rowScale.squares, radix: 16)) (needs a product other than the residual form, 1 part or more, 16-byte aligned)"
            )
        }
        let c = rowScale == nil ? formLaunch : formLaunch.rowScaled
        var a = KernelArguments()
        a.add(x)
        a.add(w)
        a.add(y)
        a.add(int: m)
        a.add(int: n)
        a.add(int: k)
        formArguments(&a)
        if let rowScale {
            a.add(rowScale.squares)
            a.add(int: rowScale.parts)
            a.add(rowScale.epsilon)
        }
        try library.function(c.kernel).launch(grid: (c.blocks(n: outputs), 1, 1), block: (32 * c.warps, 1, 1), stream: stream, arguments: a)
    }
}
