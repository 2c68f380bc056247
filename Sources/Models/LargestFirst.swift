/// The positions of a vector's largest values, found by selection (quickselect) and then sorted,
/// instead of sorting the whole vector: the sampler's top-k and top-p nucleus and the listed
/// log probabilities need a few of a vocabulary's 32K-256K logits, and sorting all of them cost
/// 11-13 ms a token at 128K (the sort alone; the selection is linear).
///
/// The order is total: a larger value first, and of equal values the lower position first; a NaN
/// counts as minus infinity. So the result does not depend on how the selection went.
enum LargestFirst {
    /// Reorders `order[from..<end]` (positions into `values`) so that `order[from..<to]` holds,
    /// sorted, the positions of its `to - from` largest values; the rest follow in no order.
    static func arrange(_ order: inout [Int], from: Int, to: Int, end: Int, by values: [Float]) {
        guard from < to, to <= end else { return }
        func key(_ p: Int) -> Float { values[p].isNaN ? -.infinity : values[p] }
        func precedes(_ a: Int, _ b: Int) -> Bool { key(a) > key(b) || (key(a) == key(b) && a < b) }
        if to - from <= scanLimit {
            scan(&order, from: from, to: to, end: end, precedes: precedes)
        } else {
            select(&order, from: from, to: to, end: end, precedes: precedes)
        }
        order[from..<to].sort(by: precedes)
    }

    /// Up to this many are found by one pass that keeps the best so far in a sorted list: most
    /// values lose to the list's last at one comparison. More are found by quickselect.
    static let scanLimit = 64

    private static func scan(_ order: inout [Int], from: Int, to: Int, end: Int, precedes: (Int, Int) -> Bool) {
        let k = to - from
        var best: [(position: Int, slot: Int)] = []
        best.reserveCapacity(k + 1)
        for slot in from..<end {
            let p = order[slot]
            if best.count == k, !precedes(p, best[k - 1].position) { continue }
            let at = best.firstIndex { precedes(p, $0.position) } ?? best.count
            best.insert((p, slot), at: at)
            if best.count > k { best.removeLast() }
        }
        // Into `from..<to` in the order of their slots: each swap moves a slot's earlier occupant,
        // never one of the best still to be placed (their slots come later).
        for (r, slot) in best.map(\.slot).sorted().enumerated() { order.swapAt(from + r, slot) }
    }

    /// Quickselect for the element that belongs at `to - 1`: after it, everything before it
    /// precedes everything after it.
    private static func select(_ order: inout [Int], from: Int, to: Int, end: Int, precedes: (Int, Int) -> Bool) {
        let k = to - 1
        var lo = from
        var hi = end - 1
        while lo < hi {
            order.swapAt(lo + (hi - lo) / 2, hi)
            let pivot = order[hi]
            var store = lo
            for i in lo..<hi where precedes(order[i], pivot) {
                order.swapAt(store, i)
                store += 1
            }
            order.swapAt(store, hi)
            if store == k { return }
            if store < k { lo = store + 1 } else { hi = store - 1 }
        }
    }

    /// The positions of the `k` largest of `values`, largest first.
    static func positions(_ k: Int, of values: [Float]) -> [Int] {
        let k = min(k, values.count)
        guard k > 0 else { return [] }
        var order = Array(values.indices)
        arrange(&order, from: 0, to: k, end: values.count, by: values)
        return Array(order[..<k])
    }
}
