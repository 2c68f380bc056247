import Foundation

/// Compiled kernels on disk, keyed by source hash, architecture and NVRTC version, so that each
/// kernel is compiled once per machine rather than at every start.
///
/// The directory is `HIFC_KERNEL_CACHE`, else `~/.cache/hifc/kernels`. A cache that cannot be
/// written only costs a recompile next time.
public struct KernelCache: Sendable {
    /// Where compiled images are kept.
    public let directory: String

    /// The cache in `directory`, or the default place.
    public init(directory: String? = nil) {
        let env = ProcessInfo.processInfo.environment
        if let directory {
            self.directory = directory
        } else if let dir = env["HIFC_KERNEL_CACHE"], !dir.isEmpty {
            self.directory = dir
        } else {
            let home = env["HOME"] ?? NSTemporaryDirectory()
            self.directory = home + "/.cache/hifc/kernels"
        }
    }

    /// The file name for one compiled source.
    public func key(source: String, architecture: String, compilerVersion: String) -> String {
        "\(Self.fnv1a64(source + "\u{0}" + compilerVersion)).\(architecture).nvrtc\(compilerVersion).cubin"
    }

    /// The cached image, or nil.
    public func load(key: String) -> [UInt8]? {
        guard let data = FileManager.default.contents(atPath: directory + "/" + key), !data.isEmpty else { return nil }
        return [UInt8](data)
    }

    /// Stores an image; written to a temporary name and renamed, so a reader never sees half a file.
    public func store(key: String, image: [UInt8]) {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let tmp = directory + "/." + key + ".\(getpid()).tmp"
            try Data(image).write(to: URL(fileURLWithPath: tmp))
            if rename(tmp, directory + "/" + key) != 0 { try? fm.removeItem(atPath: tmp) }
        } catch {
            // An unwritable cache only means compiling again next start.
        }
    }

    /// 64-bit FNV-1a of the UTF-8 bytes, as 16 hex digits (stable across runs, unlike `hashValue`).
    static func fnv1a64(_ text: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return String(h, radix: 16).leftPadded(to: 16)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
