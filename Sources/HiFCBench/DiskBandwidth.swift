import Foundation
import Synchronization

/// The disk's own sequential bandwidth under a directory, as `dd` with O_DIRECT measures it
/// (8 MiB requests; the write flushed before its clock stops): the physical limit that the flash
/// tier's I/O is put beside.
public struct DiskBandwidth: Sendable, Hashable, Codable {
    /// Sequential write, GB/s (decimal).
    public var writeGBps: Double
    /// Sequential read, GB/s (decimal).
    public var readGBps: Double

    /// A bandwidth of `writeGBps` and `readGBps`.
    public init(writeGBps: Double, readGBps: Double) {
        self.writeGBps = writeGBps
        self.readGBps = readGBps
    }

    /// Writes a file of `bytes` (at least 8 MiB) in `directory` with `dd oflag=direct conv=fsync`,
    /// reads it back with `iflag=direct`, removes it, and returns both speeds (0 for one that
    /// `dd` did not report).
    public static func measure(in directory: String, bytes: Int64) throws -> DiskBandwidth {
        let file = (directory as NSString).appendingPathComponent("hifc-dd-\(getpid()).bin")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let count = max(bytes / (8 << 20), 1)
        let written = try dd(["if=/dev/zero", "of=\(file)", "bs=8M", "count=\(count)", "oflag=direct", "conv=fsync"])
        let read = try dd(["if=\(file)", "of=/dev/null", "bs=8M", "iflag=direct"])
        return DiskBandwidth(writeGBps: written, readGBps: read)
    }

    /// The bandwidth of several flash paths used together: `measure` on every directory at once
    /// (the writes side by side, then the reads), each path's share counted until the slowest
    /// ends. Directories on one disk share it; separate drives add up.
    public static func measure(inEach directories: [String], bytes: Int64) throws -> DiskBandwidth {
        guard directories.count > 1 else { return try measure(in: directories.first ?? NSTemporaryDirectory(), bytes: bytes) }
        let files = directories.map { ($0 as NSString).appendingPathComponent("hifc-dd-\(getpid()).bin") }
        defer { files.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let count = max(bytes / (8 << 20), 1)
        func together(_ arguments: @Sendable (String) -> [String]) throws -> Double {
            let speeds = Mutex([Double](repeating: 0, count: files.count))
            let failure = Mutex<(any Error)?>(nil)
            DispatchQueue.concurrentPerform(iterations: files.count) { index in
                do {
                    let speed = try dd(arguments(files[index]))
                    speeds.withLock { $0[index] = speed }
                } catch {
                    failure.withLock { $0 = error }
                }
            }
            if let error = failure.withLock({ $0 }) { throw error }
            // Equal bytes on every path: together they moved n times a path's bytes by the time the slowest ended.
            return Double(files.count) * (speeds.withLock { $0 }.min() ?? 0)
        }
        let written = try together { ["if=/dev/zero", "of=\($0)", "bs=8M", "count=\(count)", "oflag=direct", "conv=fsync"] }
        let read = try together { ["if=\($0)", "of=/dev/null", "bs=8M", "iflag=direct"] }
        return DiskBandwidth(writeGBps: written, readGBps: read)
    }

    /// Seconds the disk needs at least to write `written` bytes and read `read` bytes.
    public func floorSeconds(written: Int, read: Int) -> Double {
        func seconds(_ bytes: Int, _ gbps: Double) -> Double { bytes == 0 ? 0 : gbps > 0 ? Double(bytes) / (gbps * 1e9) : .infinity }
        return seconds(written, writeGBps) + seconds(read, readGBps)
    }

    /// Runs `dd` and returns its speed in GB/s from its last line, "N bytes (...) copied, S s, ...".
    private static func dd(_ arguments: [String]) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["dd"] + arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let report = output.split(separator: "\n").last.map(String.init) ?? ""
        let fields = report.components(separatedBy: ",")
        guard let copied = report.split(separator: " ").first.flatMap({ Double($0) }),
            let secondsField = fields.first(where: { $0.hasSuffix(" s") }),
            let seconds = Double(secondsField.trimmingCharacters(in: .whitespaces).dropLast(2)), seconds > 0
        else { return 0 }
        return copied / seconds / 1e9
    }
}
