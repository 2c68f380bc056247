import Engine
import FlashStore
import Foundation
import HiFCCore
import Server
import SynthModels
import XCTest

@testable import hifc

/// Every default the README states is the code's: each phrase below is written from the value in
/// the code and must appear in the README as it stands (line breaks aside). The configuration
/// table has its own test (ConfigurationTests); a default that changes makes this fail, naming the
/// phrase to fix.
final class ReadmeDefaultsTests: XCTestCase {
    func testEveryDefaultTheReadmeStatesIsTheCodes() throws {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../README.md")
        let text = words(try String(contentsOf: readme, encoding: .utf8))
        for phrase in try phrases() {
            XCTAssertTrue(text.contains(words(phrase)), "the README must say: \(phrase)")
        }
    }

    private func phrases() throws -> [String] {
        let server = ServerConfiguration()
        let engine = EngineConfiguration()
        let flash = FlashStoreConfiguration(paths: [], capacityPerPath: .gib(1))
        let benchFlash = try BenchFlashCommand.parse(["--path", "x"])
        let benchSwap = try BenchSwapCommand.parse(["--model", "x"])
        let benchModel = try BenchModelCommand.parse(["--model", "x"])
        let eightB = SynthModel(architecture: .llama, preset: .eightB).config
        return [
            // The embedded default (The two commands).
            "a flash region under `./\(server.effectiveFlashPaths[0])`",
            "a KV budget small enough (\(server.kvBudget))",
            // Flash store.
            "`segmentSize`, `queueDepth`, `compactionThreshold` | the type's defaults: \(flash.segmentSize), \(flash.queueDepth), \(flash.compactionThreshold) |",
            "configuration table (segments of \(server.flashSegmentSize), for one",
            "[--size \(benchFlash.size)] [--block-size \(benchFlash.blockSizes)] [--queue-depth \(benchFlash.queueDepth)]",
            // Engine.
            "`kvBudget` (`--kv-budget`, a size or a block count; \(engine.kvBudget))",
            "`blockTokens` (`--block-size`; \(engine.blockTokens))",
            "`maxStepTokens` (`--max-batch-tokens`; \(engine.maxStepTokens))",
            "`maxRunning` (`--max-running`; \(engine.maxRunning))",
            "`preemption` (`--preemption`; \(engine.preemption.rawValue))",
            "`prefetchDepth` (`--prefetch-depth`; \(engine.prefetchDepth))",
            "`hostSwapCapacity` (`--dram-swap`; \(engine.hostSwapCapacity))",
            "`swapPrefetchCapacity` (`--swap-prefetch`, `bench swap --swap-prefetch`; \(engine.swapPrefetchCapacity))",
            "`flashDailyWriteBudget` (`--flash-daily-write-budget`; \(engine.flashDailyWriteBudget.map { "\($0)" } ?? "none"))",
            "a far smaller KV budget and blocks of \(server.blockSize) tokens",
            "(`mallopt`, \(ByteSize(Int64(MallocTuning.mmapThreshold))) and \(ByteSize(Int64(MallocTuning.trimThreshold))))",
            "(`--flash-tbw`, \(benchSwap.flashTBW))",
            // Models.
            "`8b` has Llama-3-8B shapes (hidden \(eightB.hiddenSize), \(eightB.layers) layers, \(eightB.heads)/\(eightB.kvHeads) heads, "
                + "intermediate \(eightB.intermediateSize), vocab \(eightB.vocabSize)",
            "[--batch \(benchModel.batch)]",
        ]
    }

    /// The text with each run of whitespace as one space.
    private func words(_ text: String) -> String {
        text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }
}
