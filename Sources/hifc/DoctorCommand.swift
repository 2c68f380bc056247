import ArgumentParser
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
        findings += Self.libraryFindings()
        let width = findings.map(\.0.count).max() ?? 0
        for (name, finding) in findings {
            print(name.padding(toLength: width, withPad: " ", startingAt: 0), finding.available ? "ok     " : "missing", finding.detail)
        }
    }

    /// The NVIDIA libraries, probed by dlopen over `$CUDA_HOME/lib64`, `/usr/local/cuda/lib64`
    /// and the loader path.
    static func libraryFindings() -> [(String, SystemProbe.Finding)] {
        LibraryProbe.nvidiaLibraries.map { ($0.role, LibraryProbe.find($0.names)) }
    }
}
