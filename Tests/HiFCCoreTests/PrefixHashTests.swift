import XCTest

@testable import HiFCCore

final class PrefixHashTests: XCTestCase {
    func testEqualPrefixesShareHashesAndADifferenceChangesEveryLaterBlock() {
        let a = Array(0..<40)
        var b = a
        b[17] = 999
        let ha = PrefixHash.chain(a, blockTokens: 8, namespace: 1)
        let hb = PrefixHash.chain(b, blockTokens: 8, namespace: 1)
        XCTAssertEqual(ha.count, 5)
        XCTAssertEqual(Array(ha[..<2]), Array(hb[..<2]), "blocks before the change are shared")
        for i in 2..<5 { XCTAssertNotEqual(ha[i], hb[i], "block \(i) covers the changed token") }
    }

    func testOnlyFullBlocksAreHashedAndNamespacesStayApart() {
        XCTAssertEqual(PrefixHash.chain(Array(0..<15), blockTokens: 8, namespace: 1).count, 1)
        XCTAssertNotEqual(
            PrefixHash.chain(Array(0..<8), blockTokens: 8, namespace: 1),
            PrefixHash.chain(Array(0..<8), blockTokens: 8, namespace: 2))
        let hash = PrefixHash.chain(Array(0..<8), blockTokens: 8, namespace: 1)[0]
        XCTAssertEqual(hash.key.kind, .content)
    }

    func testBlockOrderMatters() {
        let x = PrefixHash(namespace: 0).appending([1, 2]).appending([3, 4])
        let y = PrefixHash(namespace: 0).appending([3, 4]).appending([1, 2])
        XCTAssertNotEqual(x, y)
        XCTAssertNotEqual(PrefixHash(namespace: 0).appending([1, 2]), PrefixHash(namespace: 0).appending([2, 1]))
    }
}
