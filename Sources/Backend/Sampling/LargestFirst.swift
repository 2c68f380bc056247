/// The positions of a vector's largest values, found by selection and then sorted, instead of
/// sorting the whole vector: the sampler's top-k and the listed log probabilities need a few of
/// a vocabulary's 32K-256K logits, and sorting all of them cost 11-13 ms a token at 128K (the
/// sort alone; the selection is linear).
///
/// The order is total: a larger value first, and of equal values the lower position first; a NaN
/// counts as minus infinity. So the result does not depend on how the selection went.
package enum LargestFirst {
    /// The positions of the `k` largest of `values`, largest first.
    package static func positions(_ k: Int, of values: [Float]) -> [Int] {
        let k = min(k, values.count)
        guard k > 0 else { return [] }
        func key(_ p: Int) -> Float { values[p].isNaN ? -.infinity : values[p] }
        func precedes(_ a: Int, _ b: Int) -> Bool { key(a) > key(b) || (key(a) == key(b) && a < b) }
        if k <= scanLimit { return scan(k, of: values, precedes: precedes) }
        var order = Array(values.indices)
        select(&order, k: k, precedes: precedes)
        return order[..<k].sorted(by: precedes)
    }

    /// Up to this many are found by one pass that keeps the best so far in a sorted list: most
    /// values lose to the list's last at one comparison. More are found by quickselect.
    static let scanLimit = 64

    private static func scan(_ k: Int, of values: [Float], precedes: (Int, Int) -> Bool) -> [Int] {
        var best: [Int] = []
        best.reserveCapacity(k + 1)
        // Once the list is full, the value of its last: anything smaller is out at one comparison
        // of floats (the whole test, with its NaN and tie rules, took 0.3 ms of a 128K scan).
        var cutoff = -Float.infinity
        for p in values.indices {
            if best.count == k {
                let value = values[p]
                if value < cutoff || (value.isNaN && cutoff > -.infinity) || !precedes(p, best[k - 1]) { continue }
            }
            best.insert(p, at: best.firstIndex { precedes(p, $0) } ?? best.count)
            if best.count > k { best.removeLast() }
            if best.count == k { cutoff = values[best[k - 1]].isNaN ? -.infinity : values[best[k - 1]] }
        }
        return best
    }

    /// Quickselect for the element that belongs at `k - 1`: after it, everything before it
    /// precedes everything after it.
    private static func select(_ order: inout [Int], k: Int, precedes: (Int, Int) -> Bool) {
        var lo = 0
        var hi = order.count - 1
        while lo < hi {
            order.swapAt(lo + (hi - lo) / 2, hi)
            let pivot = order[hi]
            var store = lo
            for i in lo..<hi where precedes(order[i], pivot) {
                order.swapAt(store, i)
                store += 1
            }
            order.swapAt(store, hi)
            if store == k - 1 { return }
            if store < k - 1 { lo = store + 1 } else { hi = store - 1 }
        }
    }
}
