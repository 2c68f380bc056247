import Foundation

/// Causal attention over the paged, block-major KV pool for one layer, on the CPU, optionally
/// limited to a sliding window of the most recent `window` positions.
///
/// Work is split over (query row, KV head) pairs; each pair serves the whole group of query heads
/// that share the KV head, so every K and V row is read once per group.
struct CPUPagedAttention: @unchecked Sendable {
    let pool: CPUKVCachePool
    let layer: Int
    let heads: Int
    let scale: Float
    /// Keys a query sees at most (its own position and the `window - 1` before it); nil: all.
    let window: Int?
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

    private func attend(
        _ sequence: StepSequence, row i: Int, kvHead: Int, group: Int,
        scores: UnsafeMutablePointer<Float>
    ) {
        let layout = pool.layout
        let d = layout.headDim
        let tokenElements = layout.tokenElements
        let blockTokens = layout.blockTokens
        let floats = pool.floats
        let stride = pool.strideElements
        let visible = sequence.contextLength - sequence.queryLength + i + 1
        // The first position the window leaves visible (HF: key j is seen when p - j < window).
        let first = window.map { max(0, visible - $0) } ?? 0
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
            let sc = scores + g * visible - first
            var maximum = -Float.infinity
            for j in first..<visible {
                let dot = Self.dot(q, blockBase(j) + keyPlane, d) * scale
                sc[j] = dot
                maximum = max(maximum, dot)
            }
            var total: Float = 0
            for j in first..<visible {
                let p = exp(sc[j] - maximum)
                sc[j] = p
                total += p
            }
            let out = output + queryRow * rowWidth + h * d
            out.initialize(repeating: 0, count: d)
            let inverse = 1 / total
            for j in first..<visible {
                Self.accumulate(out, blockBase(j) + valuePlane, sc[j] * inverse, d)
            }
        }
    }

    /// `x · y` over `n` floats.
    @inline(__always)
    static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>()
        var e = 0
        while e + 8 <= n {
            acc +=
                UnsafeRawPointer(x + e).loadUnaligned(as: SIMD8<Float>.self)
                * UnsafeRawPointer(y + e).loadUnaligned(as: SIMD8<Float>.self)
            e += 8
        }
        var total = acc.sum()
        while e < n {
            total += x[e] * y[e]
            e += 1
        }
        return total
    }

    /// `out += weight * x` over `n` floats.
    @inline(__always)
    static func accumulate(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ weight: Float, _ n: Int) {
        var e = 0
        while e + 8 <= n {
            let o = UnsafeMutableRawPointer(out + e)
            o.storeBytes(
                of: o.loadUnaligned(as: SIMD8<Float>.self)
                    + weight * UnsafeRawPointer(x + e).loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
            e += 8
        }
        while e < n {
            out[e] += weight * x[e]
            e += 1
        }
    }
}
