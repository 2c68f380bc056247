import XCTest

@testable import HiFCCore

final class ByteSizeTests: XCTestCase {
    func testBinaryAndDecimalUnitsParse() throws {
        XCTAssertEqual(try ByteSize(parsing: "4GiB").bytes, 4 << 30)
        XCTAssertEqual(try ByteSize(parsing: "8mib").bytes, 8 << 20)
        XCTAssertEqual(try ByteSize(parsing: "6000TB").bytes, 6_000_000_000_000_000)
        XCTAssertEqual(try ByteSize(parsing: "1.5 GB").bytes, 1_500_000_000)
        XCTAssertEqual(try ByteSize(parsing: "4096").bytes, 4096)
    }

    func testBadSizesNameTheCause() {
        XCTAssertThrowsError(try ByteSize(parsing: "")) { XCTAssertEqual($0 as? ByteSize.ParseError, .empty) }
        XCTAssertThrowsError(try ByteSize(parsing: "lots")) {
            XCTAssertEqual($0 as? ByteSize.ParseError, .notANumber("lots"))
        }
        XCTAssertThrowsError(try ByteSize(parsing: "4 parsecs")) {
            XCTAssertTrue("\($0)".contains("parsecs"))
        }
        XCTAssertThrowsError(try ByteSize(parsing: "-1GiB"))
    }

    func testDescriptionUsesTheLargestWholeUnit() {
        XCTAssertEqual(ByteSize.mib(8).description, "8 MiB")
        XCTAssertEqual(ByteSize(3 << 29).description, "1.5 GiB")
    }

    func testBlockLayoutOf8BLlamaIs8MiB() {
        let layout = KVBlockLayout(layers: 32, kvHeads: 8, headDim: 128, blockTokens: 64, dtype: .bfloat16)
        XCTAssertEqual(layout.blockBytes, 8 << 20)
        XCTAssertEqual(layout.blocks(forTokens: 8700), 136)
        XCTAssertEqual(layout.elementOffset(layer: 1, value: true, token: 2), ((1 * 2 + 1) * 64 + 2) * 1024)
    }

    /// An fp8 block of the 8B shape: 4 MiB of E4M3 elements, then 128 KiB of f32 scales (one per
    /// layer, K|V, token and KV head), 4 KiB aligned: 4.125 MiB against bf16's 8 MiB.
    func testFP8BlockKeepsItsScalesAfterItsElements() {
        let layout = KVBlockLayout(layers: 32, kvHeads: 8, headDim: 128, blockTokens: 64, dtype: .fp8e4m3)
        XCTAssertEqual(layout.elementBytes, 4 << 20)
        XCTAssertEqual(layout.blockScales, 32 * 2 * 64 * 8)
        XCTAssertEqual(layout.blockBytes, (4 << 20) + (128 << 10))
        XCTAssertEqual(layout.blockStride, layout.blockBytes)
        XCTAssertEqual(layout.scaleOffset(layer: 1, value: true, token: 2), (4 << 20) + ((1 * 2 + 1) * 64 + 2) * 8 * 4)
        XCTAssertEqual(layout.bytesPerToken * 64, layout.blockBytes)
    }
}
