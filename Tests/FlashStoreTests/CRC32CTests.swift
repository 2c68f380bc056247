import XCTest

@testable import FlashStore

final class CRC32CTests: XCTestCase {
    func testKnownVectors() {
        XCTAssertEqual(CRC32C.checksum(of: Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum(of: [UInt8]()), 0)
        // RFC 3720 (iSCSI) appendix B.4.
        XCTAssertEqual(CRC32C.checksum(of: [UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum(of: [UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum(of: (0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum(of: (0..<32).map { UInt8(31 - $0) }), 0x113F_DB5C)
    }

    func testSlicingAgreesWithTheBitwiseDefinitionAtEveryAlignmentAndLength() {
        func bitwise(_ bytes: ArraySlice<UInt8>) -> UInt32 {
            var c: UInt32 = 0xFFFF_FFFF
            for b in bytes {
                c ^= UInt32(b)
                for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            }
            return ~c
        }
        var generator = SystemRandomNumberGenerator()
        let data = (0..<300).map { _ in UInt8.random(in: 0...255, using: &generator) }
        data.withUnsafeBytes { all in
            for start in 0..<9 {
                for length in [0, 1, 7, 8, 9, 63, 64, 65, 200] {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                    XCTAssertEqual(CRC32C.checksum(of: slice), bitwise(data[start..<(start + length)]), "start \(start) length \(length)")
                }
            }
            let whole = CRC32C.checksum(of: all)
            let split = CRC32C.update(
                CRC32C.checksum(of: UnsafeRawBufferPointer(rebasing: all[0..<123])),
                with: UnsafeRawBufferPointer(rebasing: all[123...]))
            XCTAssertEqual(split, whole, "update continues a checksum")
        }
    }
}
