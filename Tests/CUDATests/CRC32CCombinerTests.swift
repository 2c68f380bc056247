import FlashStore
import XCTest

@testable import CUDA

/// The host half of the GPU checksum: piece CRCs combined must equal the flash store's CRC32C.
final class CRC32CCombinerTests: XCTestCase {
    func testCombinedPiecesEqualTheWholeCRC() {
        var g = SystemRandomNumberGenerator()
        for (piece, total) in [(16, 100), (4096, 3 * 4096), (16384, 40000)] {
            let bytes = (0..<total).map { _ in UInt8.random(in: 0...255, using: &g) }
            let whole = CRC32C.checksum(of: bytes)
            var pieces: [UInt32] = []
            var start = 0
            while start < total {
                let end = min(total, start + piece)
                pieces.append(CRC32C.checksum(of: Array(bytes[start..<end])))
                start = end
            }
            let combined = CRC32CCombiner(pieceBytes: piece).combine(pieces: pieces, lastBytes: total - (pieces.count - 1) * piece)
            XCTAssertEqual(combined, whole, "piece \(piece), total \(total)")
        }
    }
}
