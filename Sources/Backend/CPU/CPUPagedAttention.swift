import Foundation

/// Causal attention over the paged, block-major KV pool for one layer, on the CPU.
///
/// Work is split over (query row, KV head) pairs; each pair serves the whole group of query heads
/// that share the KV head, so every K and V row is read once per group.
struct CPUPagedAttention: @unchecked Sendable {
    let pool: CPUKVCachePool
    let layer: Int
    let heads: Int
    let scale: Float
    let query: UnsafeMutablePointer<Float>
    let output: UnsafeMutablePointer<Float>

    func run(_ sequences: [StepSequence]) {
        let layout = pool.layout
        // (sequence index, row within the sequence) of every query row.
        var rows: [(Int, Int)] = []
        for (s, sequence) in sequences.enumerated() {
            for i in 0..<sequence.queryLength { rows.append((s, i)) }
        }
        let kvHeads = layout.kvHeads
        let maxContext = sequences.map(\.contextLength).max() ?? 0
        let group = heads / kvHeads
        parallelRanges(rows.count * kvHeads) { items in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: max(1, group * maxContext))
            defer { scores.deallocate() }
            for item in items {
                let (s, i) = rows[item / kvHeads]
                attend(sequences[s], row: i, kvHead: item % kvHeads, group: group, scores: scores)
            }
        }
    }

    private func attend(_ sequence: StepSequence, row i: Int, kvHead: Int, group: Int,
                        scores: UnsafeMutablePointer<Float>) {
        let layout = pool.layout
        let d = layout.headDim, tokenElements = layout.tokenElements, blockTokens = layout.blockTokens
        let floats = pool.floats, stride = pool.strideElements
        let visible = sequence.contextLength - sequence.queryLength + i + 1
        let queryRow = sequence.queryStart + i
        let rowWidth = heads * d
        let keyPlane = layout.elementOffset(layer: layer, value: false, token: 0) + kvHead * d
        let valuePlane = layout.elementOffset(layer: layer, value: true, token: 0) + kvHead * d

        @inline(__always) func blockBase(_ j: Int) -> UnsafeMutablePointer<Float> {
            floats + Int(sequence.blockTable[j / blockTokens]) * stride + (j % blockTokens) * tokenElements
        }

        for g in 0..<group {
            let h = kvHead * group + g
            let q = query + queryRow * rowWidth + h * d
            let sc = scores + g * visible
            var maximum = -Float.infinity
            for j in 0..<visible {
                let key = blockBase(j) + keyPlane
                var dot: Float = 0
                for e in 0..<d { dot += q[e] * key[e] }
                dot *= scale
                sc[j] = dot
                maximum = max(maximum, dot)
            }
            var total: Float = 0
            for j in 0..<visible {
                let p = exp(sc[j] - maximum)
                sc[j] = p
                total += p
            }
            let out = output + queryRow * rowWidth + h * d
            for e in 0..<d { out[e] = 0 }
            for j in 0..<visible {
                let value = blockBase(j) + valuePlane
                let weight = sc[j] / total
                for e in 0..<d { out[e] += weight * value[e] }
            }
        }
    }
}
