import Foundation

/// The CUDA C kernel sources kept in `Sources/CUDA/Kernels/` (a SwiftPM resource folder).
///
/// Each `*.cu` file is one module; `common.cuh` is prepended to each, since NVRTC has no host
/// headers and no file system of its own.
public struct KernelSources: Sendable {
    /// The directory the sources were read from.
    public let directory: String
    /// Module name ("attention") to full source text, common helpers included.
    public let modules: [String: String]

    /// Reads every module from the first directory that holds them: `HIFC_KERNEL_DIR`, the
    /// resource bundle next to the executable (where `pack.sh` puts it), SwiftPM's bundle, or the
    /// source tree this file was built from.
    public static func load() throws -> KernelSources {
        var tried: [String] = []
        for dir in candidateDirectories() {
            tried.append(dir)
            if FileManager.default.fileExists(atPath: dir + "/common.cuh") {
                return try KernelSources(directory: dir)
            }
        }
        throw CUDAError.kernelSource(name: "common.cuh", detail: "not found in: " + tried.joined(separator: ", "))
    }

    /// Reads the modules in `directory`.
    public init(directory: String) throws {
        self.directory = directory
        let fm = FileManager.default
        guard let common = fm.contents(atPath: directory + "/common.cuh").flatMap({ String(data: $0, encoding: .utf8) }) else {
            throw CUDAError.kernelSource(name: directory + "/common.cuh", detail: "cannot be read")
        }
        let files = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
        var modules: [String: String] = [:]
        for file in files where file.hasSuffix(".cu") {
            guard let text = fm.contents(atPath: directory + "/" + file).flatMap({ String(data: $0, encoding: .utf8) }) else {
                throw CUDAError.kernelSource(name: directory + "/" + file, detail: "cannot be read")
            }
            modules[String(file.dropLast(3))] = common + "\n#line 1 \"\(file)\"\n" + text
        }
        guard !modules.isEmpty else { throw CUDAError.kernelSource(name: directory, detail: "holds no .cu files") }
        self.modules = modules
    }

    private static func candidateDirectories() -> [String] {
        var dirs: [String] = []
        if let dir = ProcessInfo.processInfo.environment["HIFC_KERNEL_DIR"] { dirs.append(dir) }
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent().path
        let bundleDir = Bundle.main.bundleURL.path
        for base in [exe, bundleDir] {
            dirs.append(base + "/HiFC_CUDA.resources/Kernels")
            dirs.append(base + "/HiFC_CUDA.resources")
        }
        if let resources = Bundle.main.resourceURL?.path { dirs.append(resources + "/HiFC_CUDA.resources/Kernels") }
        dirs.append(
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("Kernels").path)
        return dirs
    }
}

/// Every kernel module compiled for one device and loaded, through the on-disk cache.
public final class KernelLibrary: @unchecked Sendable {
    // Immutable after init: modules and functions are looked up once and only read afterwards.
    /// The device the modules are loaded on.
    public let device: CUDADevice
    private var functions: [String: CUDAFunction] = [:]
    private let modules: [CUDAModule]

    /// Compiles (or takes from `cache`) every module for `device`'s architecture and loads it.
    public init(device: CUDADevice, sources: KernelSources, cache: KernelCache = KernelCache()) throws {
        self.device = device
        let nvrtc = try NVRTC.shared()
        let arch = device.info.architecture
        var loaded: [CUDAModule] = []
        var functions: [String: CUDAFunction] = [:]
        for (name, source) in sources.modules.sorted(by: { $0.key < $1.key }) {
            let key = cache.key(source: source, architecture: arch, compilerVersion: nvrtc.version)
            let image: [UInt8]
            if let cached = cache.load(key: key) {
                image = cached
            } else {
                image = try nvrtc.compile(source: source, name: name + ".cu", architecture: arch)
                cache.store(key: key, image: image)
            }
            let module = try device.loadModule(image: image)
            loaded.append(module)
            for kernel in KernelLibrary.kernelNames(in: source) {
                functions[kernel] = try module.function(kernel)
            }
        }
        self.modules = loaded
        self.functions = functions
    }

    /// The kernel `name`.
    public func function(_ name: String) throws -> CUDAFunction {
        guard let f = functions[name] else { throw CUDAError.missingKernel(name: name) }
        return f
    }

    /// Names of the `extern "C" __global__` functions in a source.
    static func kernelNames(in source: String) -> [String] {
        var names: [String] = []
        for line in source.split(separator: "\n") where line.hasPrefix("extern \"C\" __global__") {
            var text = String(line)
            // `__launch_bounds__(n)` and `__cluster_dims__(x, y, z)` come before the name and have
            // parentheses of their own.
            for attribute in ["__launch_bounds__(", "__cluster_dims__("] {
                if let at = text.range(of: attribute), let close = text[at.upperBound...].firstIndex(of: ")") {
                    text.removeSubrange(at.lowerBound...close)
                }
            }
            guard let paren = text.firstIndex(of: "(") else { continue }
            let head = text[..<paren].split(separator: " ")
            if let name = head.last { names.append(String(name)) }
        }
        return names
    }
}
