import ArgumentParser
import FlashStore
import Foundation
import HiFCBench
import HiFCCore

/// `hifc bench flash`: the flash store's write and read bandwidth through O_DIRECT, beside the raw
/// O_DIRECT sequential bandwidth of the same file system with the same request size, per block
/// size, with the store's sequential fraction and write amplification.
struct BenchFlashCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flash",
        abstract: "Measure the flash store against raw O_DIRECT sequential I/O on one path.",
        discussion: """
            For each block size: a raw loop writes then reads --size bytes sequentially in requests \
            of that size with --queue-depth requests in flight (a scratch file, removed after); then \
            the store (a scratch region, removed after) puts then gets the same bytes as random \
            payloads in batches, checksums included. With --json, one object: the first block \
            size's figures at the top level (write_gbps, read_gbps, ...; decimal GB/s) and every \
            block size under "results".
            """
    )

    @Option(help: "A directory on the file system to measure (created if missing).")
    var path: String

    @Option(help: "Bytes written and read per run, e.g. 4GiB.")
    var size: String = "4GiB"

    @Option(name: .customLong("block-size"), help: "Block (request) sizes, comma-separated.")
    var blockSizes: String = "8MiB,1MiB,64MiB"

    @Option(name: .customLong("queue-depth"), help: "Requests in flight.")
    var queueDepth: Int = 16

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    /// The figures of one block size.
    struct Row: Encodable {
        var block_size: Int
        var write_gbps: Double
        var read_gbps: Double
        var raw_write_gbps: Double
        var raw_read_gbps: Double
        var write_ratio: Double
        var read_ratio: Double
        var sequential_fraction: Double
        var write_amplification: Double
        var writes: Int64
        var bytes_written: Int64
    }

    func run() async throws {
        let total: ByteSize
        let sizes: [ByteSize]
        do {
            total = try ByteSize(parsing: size)
            sizes = try blockSizes.split(separator: ",").map { try ByteSize(parsing: String($0)) }
        } catch { throw ValidationError("\(error)") }
        guard queueDepth > 0 else { throw ValidationError("--queue-depth must be at least 1") }
        for block in sizes where block.bytes <= 0 || block.bytes % 4096 != 0 || block.bytes > total.bytes {
            throw ValidationError("block size \(block) must be a positive multiple of 4 KiB no larger than --size \(total)")
        }
        // Made like the server makes its flash directories, so a fresh path can be measured.
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw ValidationError("--path \(path): cannot create the directory: \(error.localizedDescription)")
        }
        var rows: [Row] = []
        if !json { print("flash bench: \(path), \(total) per run, queue depth \(queueDepth)") }
        for block in sizes {
            let raw = try DirectIOBenchmark.run(directory: path, totalBytes: total.bytes, requestSize: Int(block.bytes), queueDepth: queueDepth)
            let store = try await FlashStoreBenchmark(directory: path, totalBytes: total.bytes, blockSize: Int(block.bytes), queueDepth: queueDepth)
                .run()
            rows.append(
                Row(
                    block_size: Int(block.bytes), write_gbps: store.writeGBps, read_gbps: store.readGBps,
                    raw_write_gbps: raw.writeGBps, raw_read_gbps: raw.readGBps,
                    write_ratio: store.writeGBps / raw.writeGBps, read_ratio: store.readGBps / raw.readGBps,
                    sequential_fraction: store.sequentialFraction, write_amplification: store.writeAmplification,
                    writes: store.writes, bytes_written: store.bytesWritten))
            if !json, let row = rows.last {
                if rows.count == 1 {
                    print("block     store write  raw write  ratio   store read  raw read  ratio   sequential  write amp.")
                }
                print(
                    pad("\(ByteSize(Int64(row.block_size)))", 9), pad(gbps(row.write_gbps), 12), pad(gbps(row.raw_write_gbps), 10),
                    pad(percent(row.write_ratio), 7), pad(gbps(row.read_gbps), 11), pad(gbps(row.raw_read_gbps), 9),
                    pad(percent(row.read_ratio), 7), pad(percent(row.sequential_fraction), 11), String(format: "%.4f", row.write_amplification))
            }
        }
        if json { try printJSON(rows) }
    }

    private func printJSON(_ rows: [Row]) throws {
        /// The first block size's figures at the top level, beside the run's settings and all rows.
        struct Report: Encodable {
            var path: String
            var sizeBytes: Int64
            var queueDepth: Int
            var rows: [Row]

            enum Keys: String, CodingKey { case path, size_bytes, queue_depth, results }

            func encode(to encoder: Encoder) throws {
                try rows[0].encode(to: encoder)
                var container = encoder.container(keyedBy: Keys.self)
                try container.encode(path, forKey: .path)
                try container.encode(sizeBytes, forKey: .size_bytes)
                try container.encode(queueDepth, forKey: .queue_depth)
                try container.encode(rows, forKey: .results)
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let report = Report(path: path, sizeBytes: try ByteSize(parsing: size).bytes, queueDepth: queueDepth, rows: rows)
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    }

    private func gbps(_ value: Double) -> String { String(format: "%.2f GB/s", value) }
    private func percent(_ value: Double) -> String { String(format: "%.1f%%", value * 100) }
    private func pad(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
}
