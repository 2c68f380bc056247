import XCTest
@testable import CUDA

final class CRC32CCombinerTests: XCTestCase {
    func testKnownCheckValue() {
        // The standard CRC32C check value of "123456789".
        let crc = Array("123456789".utf8).withUnsafeBytes(HostReference.crc32c)
        XCTAssertEqual(crc, 0xE306_9283)
    }

    func testCombinedPiecesEqualTheWholeCRC() {
        var g = SystemRandomNumberGenerator()
        for (piece, total) in [(16, 100), (4096, 3 * 4096), (16384, 40000)] {
            let bytes = (0..<total).map { _ in UInt8.random(in: 0...255, using: &g) }
            let whole = bytes.withUnsafeBytes(HostReference.crc32c)
            var pieces: [UInt32] = []
            var start = 0
            while start < total {
                let end = min(total, start + piece)
                pieces.append(bytes[start..<end].withUnsafeBytes(HostReference.crc32c))
                start = end
            }
            let combined = CRC32CCombiner(pieceBytes: piece).combine(pieces: pieces, lastBytes: total - (pieces.count - 1) * piece)
            XCTAssertEqual(combined, whole, "piece \(piece), total \(total)")
        }
    }
}
