import XCTest

@testable import HiFCCore

final class PrefixHashTests: XCTestCase {
    private let root = PrefixHash.root(namespace: SchedulerTests.namespace)

    func testEqualPrefixesShareHashesAndADifferenceChangesEveryLaterBlock() {
        let a = Array(0..<40)
        var b = a
        b[17] = 999
        let ha = PrefixHash.chain(a, blockTokens: 8, from: root)
        let hb = PrefixHash.chain(b, blockTokens: 8, from: root)
        XCTAssertEqual(ha.count, 5)
        XCTAssertEqual(Array(ha[..<2]), Array(hb[..<2]), "blocks before the change are shared")
        for i in 2..<5 { XCTAssertNotEqual(ha[i], hb[i], "block \(i) covers the changed token") }
    }

    func testOnlyFullBlocksAreHashedAndKeysAreContentKeys() {
        XCTAssertEqual(PrefixHash.chain(Array(0..<15), blockTokens: 8, from: root).count, 1)
        let hash = PrefixHash.chain(Array(0..<8), blockTokens: 8, from: root)[0]
        XCTAssertEqual(hash.key.kind, .content)
        XCTAssertEqual(hash.key.high, hash.words.0)
    }

    func testBlockOrderMatters() {
        XCTAssertNotEqual(root.appending([1, 2]).appending([3, 4]), root.appending([3, 4]).appending([1, 2]))
        XCTAssertNotEqual(root.appending([1, 2]), root.appending([2, 1]))
    }

    func testTheChainIsSHA256OfTheParentAndTheTokens() {
        // Python: hashlib.sha256(bytes(range(32)) + (1).to_bytes(4, "little") + (2).to_bytes(4, "little")).
        let parent = PrefixHash(bytes: Array(0..<32))
        let child = parent.appending([1, 2])
        XCTAssertEqual(child.words.0, 0x5ea9_f47d_a47b_7d02)
        XCTAssertEqual(child.words.1, 0xe3d4_b8c3_8c62_df97)
        XCTAssertEqual(child.words.2, 0xaecd_079d_e270_b354)
        XCTAssertEqual(child.words.3, 0x58bf_d7e0_d6aa_ce14)
    }

    func testNamespacesAndSaltsStartDifferentChains() {
        let layout = KVBlockLayout(layers: 1, kvHeads: 1, headDim: 4, blockTokens: 4, dtype: .float32)
        let a = PrefixNamespace(modelIdentity: [1], layout: layout, backend: "cpu")
        var bf16 = layout
        bf16.dtype = .bfloat16
        var fp8 = layout
        fp8.dtype = .fp8e4m3
        var fp8bf16 = bf16
        fp8bf16.dtype = .fp8e4m3
        XCTAssertNotEqual(
            PrefixNamespace(modelIdentity: [1], layout: bf16, backend: "cuda"), PrefixNamespace(modelIdentity: [1], layout: fp8bf16, backend: "cuda"))
        let variants = [
            PrefixNamespace(modelIdentity: [1], layout: fp8, backend: "cpu"),
            PrefixNamespace(modelIdentity: [2], layout: layout, backend: "cpu"),
            PrefixNamespace(modelIdentity: [1], layout: bf16, backend: "cpu"),
            PrefixNamespace(
                modelIdentity: [1], layout: KVBlockLayout(layers: 1, kvHeads: 1, headDim: 4, blockTokens: 8, dtype: .float32), backend: "cpu"),
            PrefixNamespace(modelIdentity: [1], layout: layout, backend: "cuda"),
        ]
        for other in variants { XCTAssertNotEqual(PrefixHash.root(namespace: a), PrefixHash.root(namespace: other)) }
        XCTAssertEqual(PrefixHash.root(namespace: a), PrefixHash.root(namespace: a, salt: ""))
        XCTAssertNotEqual(PrefixHash.root(namespace: a), PrefixHash.root(namespace: a, salt: "tenant"))
        XCTAssertNotEqual(PrefixHash.root(namespace: a, salt: "x"), PrefixHash.root(namespace: a, salt: "y"))
    }
}
