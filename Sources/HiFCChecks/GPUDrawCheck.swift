import Backend
import CUDA
import Foundation
import HiFCCore
import Models

/// The draws a sampled request's token comes from, made where the logits are (`sample_rows_f32`,
/// and on a device with clusters `sample_rows_f32_cluster8` too): each must pick the token
/// `TokenDraw.pick` picks on the host from the same logits and random number, and rows without a
/// draw must keep their argmax.
extension GPUSelfCheck {
    func checkDraws() throws -> [GPUCheckResult] {
        // (top-k, top-p, min-p, soft-cap): every path of the kernel and the host's.
        let kinds: [(Int, Float, Float, Float)] = [
            (0, 1, 0, 0), (0, 0.9, 0, 0), (0, 0.9, 0.05, 0), (0, 0.5, 0, 30), (0, 1, 0.1, 30),
            (40, 1, 0, 0), (40, 0.8, 0.02, 0), (1, 1, 0, 0), (5000, 0.95, 0, 0),
        ]
        var results: [GPUCheckResult] = []
        let forms = kernels.library.device.info.hasClusters ? [false, true] : [false]
        for clustered in forms {
            for (vocab, rowsPerKind, ties) in [(128_256, 2, false), (5003, 6, false), (5003, 4, true)] {
                results.append(try checkDraws(kinds: kinds, vocab: vocab, rowsPerKind: rowsPerKind, ties: ties, clustered: clustered))
            }
        }
        return results
    }

    /// One row set's draws by one form of the kernel, against the host's.
    private func checkDraws(kinds: [(Int, Float, Float, Float)], vocab: Int, rowsPerKind: Int, ties: Bool, clustered: Bool) throws
        -> GPUCheckResult
    {
        var generator = SystemRandomNumberGenerator()
        let rows = kinds.count * rowsPerKind + 2
        var logits = HostReference.randomNormal(rows * vocab, scale: 2.5)
        // Few distinct values, so that equal logits straddle each boundary.
        if ties { logits = logits.map { ($0 * 2).rounded() / 2 } }
        var draws: [TokenDraw?] = []
        var softcaps: [Float] = []
        for (topK, topP, minP, softcap) in kinds {
            for n in 0..<rowsPerKind {
                // The ends of the draw's range too: the first candidate, and the last.
                let uniform = n == 0 && topP < 1 ? 0 : n == 1 && topK > 0 ? 0.999_999 : Double.random(in: 0..<1, using: &generator)
                draws.append(
                    TokenDraw(
                        temperature: [0.7, 1, 1.5].randomElement(using: &generator)!, topK: topK, topP: topP, minP: minP,
                        uniform: uniform))
                softcaps.append(softcap)
            }
        }
        draws += [nil, nil]
        softcaps += [0, 0]
        var picked: [Int32] = []
        let lb = try upload(logits)
        // One launch per soft-cap: the kernel takes one for its rows, as a model has one.
        for softcap in Set(softcaps).sorted() {
            let only = draws.indices.map { softcaps[$0] == softcap ? draws[$0] : nil }
            let table = try upload(CUDAKernels.packedDraws(only))
            let out = try poisoned(rows * 4)
            try kernels.argmax(logits: lb.address, rows: rows, vocab: vocab, output: out.address, stream: stream)
            try kernels.sampleRows(
                logits: lb.address, rows: rows, vocab: vocab, draws: table.address, softcap: softcap, output: out.address, stream: stream,
                clustered: clustered)
            try stream.synchronize()
            let got = try out.download(Int32.self, count: rows)
            if picked.isEmpty { picked = got }
            for r in 0..<rows where only[r] != nil { picked[r] = got[r] }
        }
        var wrong: [String] = []
        for r in 0..<rows {
            var row = Array(logits[r * vocab..<(r + 1) * vocab])
            if softcaps[r] > 0 { row = row.softcapped(by: softcaps[r]) }
            let expected = draws[r]?.pick(from: row) ?? Sampler.argmax(row)
            if Int(picked[r]) != expected {
                wrong.append("row \(r) \(draws[r].map { "\($0)" } ?? "argmax"): \(picked[r]) for \(expected)")
            }
        }
        let shape = "\(rows)x\(vocab)\(ties ? " with ties" : "")\(clustered ? ", 8 blocks a row" : "")"
        let examples = wrong.isEmpty ? "" : ": " + wrong.prefix(3).joined(separator: "; ")
        return GPUCheckResult(name: "draws on the GPU, \(shape) (rows unlike the host's\(examples))", error: Double(wrong.count), tolerance: 0)
    }
}
