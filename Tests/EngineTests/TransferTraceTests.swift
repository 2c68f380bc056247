import Engine
import Foundation
import HiFCCore
import XCTest

final class TransferTraceTests: XCTestCase {
    func testEachBatchThroughATracedTierIsOneLineWithItsKeysAndBytes() async throws {
        let path = NSTemporaryDirectory() + "hifc-trace-\(UUID().uuidString).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let recorder = try TransferTraceRecorder(path: path)
        let tier = TracedTierStore(HostMemoryTier(blockBytes: 4096, capacityBlocks: 8), recorder: recorder, replica: 1)
        let keys: [BlockKey] = [.sequence(7, block: 0), .content(high: 0xABC, low: 0x1_0000_0000_0001)]
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * 4096, alignment: 4096)
        defer { buffer.deallocate() }
        let halves = [UnsafeMutableRawBufferPointer(rebasing: buffer[0..<4096]), UnsafeMutableRawBufferPointer(rebasing: buffer[4096...])]
        try await tier.write(zip(keys, halves).map { KVBlockSource(key: $0, bytes: UnsafeRawBufferPointer($1)) })
        let read = await tier.read(zip(keys, halves).map { KVBlockDestination(key: $0, bytes: $1) })
        XCTAssertEqual(read.intact, 2)
        tier.remove([keys[0]])
        recorder.close()

        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        let events = try lines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(events.map { $0["op"] as? String }, ["write", "read", "delete"])
        XCTAssertEqual(events.map { $0["bytes"] as? Int }, [8192, 8192, 0])
        XCTAssertEqual(events.map { $0["replica"] as? Int }, [1, 1, 1])
        let times = events.compactMap { $0["t"] as? Double }
        XCTAssertEqual(times, times.sorted())
        let written = try XCTUnwrap(events[0]["keys"] as? [String])
        XCTAssertEqual(written.map { BlockKey(traceText: $0) }, keys, "keys read back as they were written: \(written)")
        XCTAssertNil(BlockKey(traceText: "prefix:12"))
        XCTAssertNil(BlockKey(traceText: "seq1/blk2"))
    }
}
