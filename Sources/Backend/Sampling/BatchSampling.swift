import Dispatch

/// Samples a step's logits rows, each with its own request's sampler, on several threads when
/// there are several rows. Each row reads its whole vocabulary (at 128K entries about 0.75 ms for
/// plain temperature sampling and 3.8 ms for top-p on one core, bench/results/logprobs.md), so
/// a batch of 64 sampled rows on the engine's thread alone would take several GPU steps' time.
/// Rows are independent: each request's sampler has its own random state and counts, so the
/// tokens are the same whichever thread samples which row.
package enum BatchSampling {
    /// Chooses a token for `logits[i]` with `rows[i]` for every i (`choose` may update the row:
    /// its sampler's state, its log probabilities) and returns the tokens in the same order.
    package static func sample<Row>(_ rows: inout [Row], _ logits: [[Float]], choose: @Sendable (inout Row, [Float]) -> Int) -> [Int] {
        precondition(rows.count == logits.count, "one logits row a request")
        var tokens = [Int](repeating: 0, count: rows.count)
        guard rows.count > 1 else {
            for i in rows.indices { tokens[i] = choose(&rows[i], logits[i]) }
            return tokens
        }
        rows.withUnsafeMutableBufferPointer { rowBuffer in
            tokens.withUnsafeMutableBufferPointer { chosenBuffer in
                let shared = Storage(rows: rowBuffer.baseAddress!, chosen: chosenBuffer.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: rowBuffer.count) { i in
                    shared.chosen[i] = choose(&shared.rows[i], logits[i])
                }
            }
        }
        return tokens
    }

    /// The two arrays' storage, shared by the iterations of one `concurrentPerform`: iteration i
    /// reads and writes element i of each and nothing else, so no two threads touch the same
    /// element, and both arrays outlive the call.
    private struct Storage<Row>: @unchecked Sendable {
        let rows: UnsafeMutablePointer<Row>
        let chosen: UnsafeMutablePointer<Int>
    }
}
