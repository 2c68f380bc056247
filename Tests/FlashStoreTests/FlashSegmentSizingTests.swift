import Foundation
import HiFCCore
import XCTest

@testable import FlashStore

/// A server's flash segments must hold at least one KV block with its slot header, else every
/// swap-out and prefix save of that block fails (an 8B model's 64-token bf16 block is 8 MiB,
/// the server's default segment).
final class FlashSegmentSizingTests: XCTestCase {
    func testASegmentThatHoldsABlockIsKept() {
        let configuration = testConfiguration(["/unused"], segment: .mib(8))
        XCTAssertNil(configuration.segmentSizeHolding(blockBytes: 8 * 1024 * 1024 - 4096))
        XCTAssertNil(configuration.segmentSizeHolding(blockBytes: 128 * 1024))
    }

    func testABlockAsLargeAsTheSegmentRaisesItToFourSlotsInWholeMiB() throws {
        let configuration = testConfiguration(["/unused"], segment: .mib(8))
        let raised = try XCTUnwrap(configuration.segmentSizeHolding(blockBytes: 8 * 1024 * 1024))
        // 4 slots of 8 MiB + 4 KiB header: 32 MiB + 16 KiB, rounded up to 33 MiB.
        XCTAssertEqual(raised, .mib(33))
        XCTAssertNil(testConfiguration(["/unused"], segment: raised).segmentSizeHolding(blockBytes: 8 * 1024 * 1024))
    }

    func testABlockOfTheSegmentsSizeIsStoredOnceTheSegmentIsRaised() async throws {
        let blockBytes = 4 * 1024 * 1024
        try await withScratchStore { small, _ in
            let key = BlockKey.content(high: 7, low: 7)
            do {
                try await put(small, [(key, expectedPayload(key, length: blockBytes))])
                XCTFail("a 4 MiB block was stored in 4 MiB segments")
            } catch FlashStoreError.blockTooLarge {}
        }
        try await withScratchStore(
            configuration: {
                var configuration = testConfiguration([$0])
                configuration.segmentSize = configuration.segmentSizeHolding(blockBytes: blockBytes)!
                return configuration
            }
        ) { store, _ in
            let key = BlockKey.content(high: 8, low: 8)
            try await put(store, [(key, expectedPayload(key, length: blockBytes))])
            let (result, bytes) = await getBytes(store, key, capacity: blockBytes)
            XCTAssertEqual(result, .hit(length: blockBytes))
            XCTAssertEqual(bytes, expectedPayload(key, length: blockBytes))
        }
    }
}
