import Backend
import XCTest

@testable import CUDA

/// The draws `sample_rows_f32` reads: sampling.cu's `RowDraw`, 24 bytes a row.
final class PackedDrawsTests: XCTestCase {
    func testADrawPacksIntoTheKernelsRowLayoutAndNoDrawIsAZeroTemperature() {
        let draw = TokenDraw(temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05, uniform: 0.123_456_789_012_345)
        let words = CUDAKernels.packedDraws([draw, nil])
        XCTAssertEqual(words.count, 12)
        XCTAssertEqual(Float(bitPattern: UInt32(bitPattern: words[0])), 0.7)
        XCTAssertEqual(Float(bitPattern: UInt32(bitPattern: words[1])), 0.9)
        XCTAssertEqual(Float(bitPattern: UInt32(bitPattern: words[2])), 0.05)
        XCTAssertEqual(words[3], 40)
        let uniform = UInt64(UInt32(bitPattern: words[4])) | UInt64(UInt32(bitPattern: words[5])) << 32
        XCTAssertEqual(Double(bitPattern: uniform), 0.123_456_789_012_345, "little-endian f64 at byte 16, as the struct lays it out")
        XCTAssertEqual(Array(words[6...]), [0, 0, 0, 0, 0, 0])
    }
}
