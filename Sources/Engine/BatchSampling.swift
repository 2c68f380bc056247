import Dispatch

/// Samples a step's logits rows, each with its own request's sampler, on several threads when
/// there are several rows. Each row reads its whole vocabulary (at 128K entries about 0.75 ms for
/// plain temperature sampling and 3.8 ms for top-p on one core, bench/results/logprobs.md), so
/// a batch of 64 sampled rows on the engine's thread alone would take several GPU steps' time.
/// Rows are independent: each request's sampler has its own random state and counts, so the
/// tokens are the same whichever thread samples which row.
enum BatchSampling {
    /// Samples `logits[i]` with `requests[i]` for every i, updating each request's sampler and
    /// log probabilities, and returns the tokens in the same order.
    static func sample(_ requests: inout [RequestProgress], _ logits: [[Float]]) -> [Int] {
        precondition(requests.count == logits.count, "one logits row a request")
        var tokens = [Int](repeating: 0, count: requests.count)
        guard requests.count > 1 else {
            for i in requests.indices { tokens[i] = requests[i].sample(logits[i]) }
            return tokens
        }
        requests.withUnsafeMutableBufferPointer { progress in
            tokens.withUnsafeMutableBufferPointer { chosen in
                let rows = Rows(progress: progress.baseAddress!, chosen: chosen.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: progress.count) { i in
                    rows.chosen[i] = rows.progress[i].sample(logits[i])
                }
            }
        }
        return tokens
    }

    /// The two arrays' storage, shared by the iterations of one `concurrentPerform`: iteration i
    /// reads and writes element i of each and nothing else, so no two threads touch the same
    /// element, and both arrays outlive the call.
    private struct Rows: @unchecked Sendable {
        let progress: UnsafeMutablePointer<RequestProgress>
        let chosen: UnsafeMutablePointer<Int>
    }
}
