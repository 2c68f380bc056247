import ArgumentParser
import CUDA
import FlashStore
import Foundation

/// `hifc doctor`: what this machine offers HiFC: O_DIRECT on the flash path, io_uring, and the
/// NVIDIA libraries loaded at run time (found or not, with the paths tried).
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check O_DIRECT on the flash path, io_uring, and the CUDA libraries."
    )

    @Option(name: .customLong("flash-path"), help: "Flash paths to check, comma-separated (default: $HIFC_FLASH_PATHS, else the current directory).")
    var flashPath: String?

    func run() async throws {
        let paths = FlashStoreConfiguration.parsePaths(
            flashPath ?? ProcessInfo.processInfo.environment["HIFC_FLASH_PATHS"] ?? FileManager.default.currentDirectoryPath)
        var findings: [(String, SystemProbe.Finding)] = paths.map { ("O_DIRECT", SystemProbe.directIO(in: $0)) }
        findings.append(("io_uring", SystemProbe.ioUring()))
        findings += Self.nvidiaFindings(flashPath: paths.first)
        let width = findings.map(\.0.count).max() ?? 0
        for (name, finding) in findings {
            print(name.padding(toLength: width, withPad: " ", startingAt: 0), finding.available ? "ok     " : "missing", finding.detail)
        }
    }

    /// The NVIDIA stack as the CUDA backend finds it (`CUDAProbe`): each library with its path
    /// and version (or every path tried), each GPU with its compute capability and memory, and
    /// whether cuFile can register a file on the first flash path (or why not).
    static func nvidiaFindings(flashPath: String?) -> [(String, SystemProbe.Finding)] {
        CUDAProbe.run(flashPath: flashPath).map { ($0.item, SystemProbe.Finding(available: $0.ok, detail: $0.detail)) }
    }
}
