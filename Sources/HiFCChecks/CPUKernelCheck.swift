import Backend
import CPUKernels
import Foundation

/// `hifc check cpu-kernels`: the quantized products (`hifc_gemm_quant`) of every instruction set
/// this CPU runs against the portable kernels, on fresh random weights and activations in the
/// shapes of a small model's prefill, in the file's rows and in the interleaved layout the CPU
/// backend multiplies them in (`hifc_quant_interleave`), with their timings; and whether Intel AMX
/// was found and taken. For CPUs the development machines lack (AMX): the lead runs it where they are.
public struct CPUKernelCheck {
    /// One product: its shape, the instruction set, its error against the portable kernels and
    /// its best time.
    public struct Result: CustomStringConvertible {
        public var type: String
        public var m, n, k, threads: Int
        public var isa: String
        /// max |c − portable| / max |portable|.
        public var error: Double
        public var seconds: Double
        /// Whether it ran on AMX tiles (`hifc_amx_products` counted it), and whether it should have.
        public var usedAMX: Bool
        public var expectsAMX: Bool
        public static let tolerance = 1e-4

        public var passed: Bool { error <= Self.tolerance && usedAMX == expectsAMX }

        public var description: String {
            let macs = Double(m) * Double(n) * Double(k)
            return String(
                format: "%@ %-6@ %4dx%5dx%4d %2d threads %-8@ error %.2e  %8.3f ms  %7.1f GMAC/s%@", passed ? "ok  " : "FAIL", type, m, n, k,
                threads, isa, error, seconds * 1000, macs / seconds / 1e9, usedAMX ? "  (AMX tiles)" : "")
        }
    }

    /// (m, n, k): SmolLM2-135M's prefill of 512 tokens (q/o, k/v, gate+up, down, a slice of the
    /// LM head), the smallest AMX product and a ragged one.
    public static let shapes = [
        (512, 576, 576), (512, 192, 576), (512, 3072, 576), (512, 576, 1536), (512, 8192, 576), (16, 576, 576), (37, 100, 544),
    ]

    public let threads: Int
    public let repetitions: Int

    /// A check timing each product `repetitions` times on `threads` threads (and on one).
    public init(threads: Int, repetitions: Int = 5) {
        self.threads = threads
        self.repetitions = repetitions
    }

    /// What this CPU and process offer: the model name, the kernels chosen, and each condition
    /// of the AMX path.
    public static func environmentLines() -> [String] {
        let model =
            (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n")
            .first { $0.hasPrefix("model name") }.map {
                String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces)
            } ?? "unknown"
        let status = hifc_amx_status()
        func has(_ bit: hifc_amx_status_bits) -> String { status & Int32(bit.rawValue) != 0 ? "yes" : "no" }
        let ready = status & Int32(HIFC_AMX_READY.rawValue) == Int32(HIFC_AMX_READY.rawValue)
        return [
            "CPU: \(model); kernels detected: \(String(cString: hifc_isa_name(hifc_isa_detected())))",
            "AMX: cpuid amx-tile \(has(HIFC_AMX_CPU_TILE)), amx-int8 \(has(HIFC_AMX_CPU_INT8)), XCR0 tile state \(has(HIFC_AMX_OS_STATE)), Linux permission \(has(HIFC_AMX_PERMITTED)) -> "
                + (ready
                    ? "AMX DETECTED, used for products of >= \(HIFC_AMX_MIN_ROWS) rows and >= \(HIFC_AMX_MIN_MACS_PER_THREAD) multiply-adds per thread"
                    : "AMX NOT AVAILABLE (the avx512 kernels run)"),
        ]
    }

    /// Runs every shape and format on the AVX-512 and AMX kernels (where the CPU has them), printing
    /// each result as it comes; returns them all.
    public func run(print: (String) -> Void) -> [Result] {
        var results: [Result] = []
        let sets = [HIFC_ISA_AVX512, HIFC_ISA_AMX].filter { $0.rawValue <= hifc_isa_detected().rawValue }
        defer { hifc_isa_select(hifc_isa_detected()) }
        let formats: [(String, hifc_quant_type)] = [
            ("Q4_1", HIFC_QUANT_Q4_1), ("Q4_0", HIFC_QUANT_Q4_0), ("Q5_0", HIFC_QUANT_Q5_0), ("Q5_1", HIFC_QUANT_Q5_1),
            ("Q8_0", HIFC_QUANT_Q8_0),
        ]
        let pools = Array(Set([1, threads])).sorted().map { hifc_pool_create(Int32($0), CPUThreadPool.spinMicroseconds)! }
        defer { pools.forEach { hifc_pool_destroy($0) } }
        let widest = pools.last!
        for (fileName, type) in formats {
            for (m, n, k) in Self.shapes {
                let file = Int32(type.rawValue)
                let fileWeights = Self.randomWeights(type: type, rows: n, k: k)
                let a = (0..<(m * k)).map { _ in Float.random(in: -1...1) }
                var scratch = [UInt8](repeating: 0, count: hifc_gemm_quant_scratch(file, m, k))
                var reference = [Float](repeating: 0, count: m * n)
                hifc_isa_select(HIFC_ISA_PORTABLE)
                hifc_gemm_quant(widest, file, a, fileWeights, nil, &reference, m, n, k, &scratch)
                let scale = Double(reference.map(abs).max() ?? 1)
                var layouts = [(fileName, file, fileWeights)]
                if n % 8 == 0 {
                    var interleaved = [UInt8](repeating: 0, count: fileWeights.count)
                    hifc_quant_interleave(widest, file, fileWeights, n, k, &interleaved)
                    layouts.append((fileName + "x8", hifc_quant_interleaved_type(file), interleaved))
                }
                for (name, t, weights) in layouts {
                    for isa in sets {
                        hifc_isa_select(isa)
                        for pool in pools {
                            var c = [Float](repeating: 0, count: m * n)
                            let before = hifc_amx_products()
                            hifc_gemm_quant(pool, t, a, weights, nil, &c, m, n, k, &scratch)
                            let usedAMX = hifc_amx_products() > before
                            let expectsAMX = hifc_gemm_quant_uses_amx(t, m, n, k, hifc_pool_threads(pool)) != 0
                            let error = zip(c, reference).map { Double(abs($0 - $1)) }.max() ?? 0
                            var best = Double.infinity
                            for _ in 0..<repetitions {
                                let start = DispatchTime.now().uptimeNanoseconds
                                hifc_gemm_quant(pool, t, a, weights, nil, &c, m, n, k, &scratch)
                                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                            }
                            let result = Result(
                                type: name, m: m, n: n, k: k, threads: Int(hifc_pool_threads(pool)), isa: String(cString: hifc_isa_name(isa)),
                                error: error / max(scale, 1e-30), seconds: best, usedAMX: usedAMX, expectsAMX: expectsAMX)
                            print(result.description)
                            results.append(result)
                        }
                    }
                }
            }
        }
        return results
    }

    /// `rows` rows of `k` weights of `type` with random codes and scales as trained models have
    /// them (d from 0.001 to 0.05, Q4_1's and Q5_1's min from −0.2 to 0.2).
    static func randomWeights(type: hifc_quant_type, rows: Int, k: Int) -> [UInt8] {
        let t = Int32(type.rawValue)
        let size = Int(hifc_quant_block_bytes(t))
        let count = rows * k / Int(hifc_quant_block_weights(t))
        var bytes = (0..<(size * count)).map { _ in UInt8.random(in: 0...255) }
        func put(_ value: Float, at offset: Int) {
            let bits = Float16(value).bitPattern
            bytes[offset] = UInt8(bits & 0xFF)
            bytes[offset + 1] = UInt8(bits >> 8)
        }
        for block in 0..<count {
            put(Float.random(in: 0.001...0.05), at: block * size)
            if type == HIFC_QUANT_Q4_1 || type == HIFC_QUANT_Q5_1 { put(Float.random(in: -0.2...0.2), at: block * size + 2) }
        }
        return bytes
    }
}
