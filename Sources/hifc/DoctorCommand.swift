import ArgumentParser
import Backend
import CUDA
import FlashStore
import Foundation
import Server

/// `hifc doctor`: what this machine offers HiFC: O_DIRECT on the flash path, io_uring, the
/// NVIDIA libraries loaded at run time (every one, found or not), and what the CPU backend will
/// use when there is no GPU.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check O_DIRECT on the flash path, io_uring, the CUDA libraries and the CPU backend's BLAS."
    )

    @Option(
        name: .customLong("flash-path"),
        help: "Flash paths to check, comma-separated (default: the paths `hifc serve` would use: $HIFC_FLASH_PATHS, else <data-dir>/flash).")
    var flashPath: String?

    @Flag(help: "For each missing library, list every path it was looked for in.")
    var verbose = false

    func run() async throws {
        let paths = flashPath.map(FlashStoreConfiguration.parsePaths) ?? Self.serverFlashPaths()
        var findings: [(String, SystemProbe.Finding)] = paths.map { ("O_DIRECT", Self.directIO(at: $0)) }
        findings.append(("io_uring", SystemProbe.ioUring()))
        let nvidia = CUDAProbe.run(flashPath: paths.first)
        findings += nvidia.lines.map { ($0.item, SystemProbe.Finding(available: $0.ok, detail: $0.detail)) }
        findings.append(("CPU backend", Self.cpuBackend(gpus: nvidia.gpus)))
        let width = findings.map(\.0.count).max() ?? 0
        for (name, finding) in findings {
            print(name.padding(toLength: width, withPad: " ", startingAt: 0), finding.available ? "ok     " : "missing", finding.detail)
        }
        let traces = nvidia.lines.compactMap { line in line.trace.map { (line.item, $0) } }
        if verbose {
            for (item, trace) in traces { print("\n\(item): \(trace)") }
        } else if !traces.isEmpty {
            print("(hifc doctor --verbose lists every path each missing library was looked for in)")
        }
    }

    /// The flash paths `hifc serve` would use with no flags: from its environment and YAML file
    /// (`HIFC_FLASH_PATHS`, `HIFC_DATA_DIR`, `HIFC_CONFIG`), else `hifc-data/flash`.
    static func serverFlashPaths() -> [String] {
        ((try? ConfigurationLoader.load(arguments: [])) ?? ServerConfiguration()).effectiveFlashPaths
    }

    /// O_DIRECT in `path`; a directory the server has not made yet is probed in its nearest
    /// existing parent (the same file system, as the server creates it there).
    static func directIO(at path: String) -> SystemProbe.Finding {
        var directory = path
        while !FileManager.default.fileExists(atPath: directory) {
            let parent = (directory as NSString).deletingLastPathComponent
            directory = parent.isEmpty ? "." : parent
            if directory == "." || directory == "/" { break }
        }
        var finding = SystemProbe.directIO(in: directory)
        if directory != path { finding.detail += " (\(path) does not exist yet: `hifc serve` creates it there)" }
        return finding
    }

    /// Whether the CPU backend is what runs here, and which matrix-product library it will use.
    static func cpuBackend(gpus: Int) -> SystemProbe.Finding {
        let environment = ProcessInfo.processInfo.environment
        let blas: String
        if let library = BLASLibrary.load(environment: environment) {
            blas = "matrix products through \(library.path) (CBLAS)"
        } else if BLASLibrary.isSwitchedOff(environment: environment) {
            blas = "HIFC_BLAS=\(environment["HIFC_BLAS"] ?? ""): matrix products through the C GEMM (CPUKernels)"
        } else {
            let tried = environment["HIFC_BLAS_LIBRARY"].map { [$0] } ?? BLASLibrary.candidates
            blas =
                "no CBLAS library found (tried \(tried.joined(separator: ", "))): matrix products through the C GEMM (CPUKernels); "
                + "`apt-get install libopenblas0` to use OpenBLAS, or HIFC_BLAS_LIBRARY names one"
        }
        let role =
            gpus > 0
            ? "used with --device cpu (device auto takes cuda:0)"
            : "no usable GPU here, which is fine: `hifc serve` and the other commands run on the CPU backend (device auto)"
        return SystemProbe.Finding(available: true, detail: "\(role); \(blas)")
    }
}
