import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A shared library opened with `dlopen`, and the search that finds it.
///
/// Every NVIDIA library is loaded at run time so that HiFC builds and runs on machines with no
/// CUDA at all (DESIGN.md, "dlopen for every NVIDIA library").
public final class DynamicLibrary: @unchecked Sendable {
    // dlopen handles are process-wide and immutable once open; sharing them is safe.
    /// The path that was opened.
    public let path: String
    /// The library's file name, as searched for (for messages).
    public let name: String
    private let handle: UnsafeMutableRawPointer

    private init(path: String, name: String, handle: UnsafeMutableRawPointer) {
        self.path = path
        self.name = name
        self.handle = handle
    }

    /// Opens the first of `names` found in `LibrarySearch.directories()` or on the loader path.
    /// The error lists every path tried and why each failed.
    public static func open(anyOf names: [String]) throws -> DynamicLibrary {
        var tried: [String] = []
        var reasons: [String] = []
        for name in names {
            for dir in LibrarySearch.directories() {
                let candidate = dir + "/" + name
                guard FileManager.default.fileExists(atPath: candidate) else {
                    tried.append(candidate)
                    reasons.append("no such file")
                    continue
                }
                if let h = dlopen(candidate, RTLD_NOW | RTLD_GLOBAL) {
                    return DynamicLibrary(path: candidate, name: name, handle: h)
                }
                tried.append(candidate)
                reasons.append(lastDLError())
            }
            // The loader's own path (LD_LIBRARY_PATH, ld.so.cache): where the driver's libcuda lives.
            if let h = dlopen(name, RTLD_NOW | RTLD_GLOBAL) {
                return DynamicLibrary(path: resolvedPath(of: name) ?? name, name: name, handle: h)
            }
            tried.append("\(name) (loader path)")
            reasons.append(lastDLError())
        }
        throw CUDAError.libraryNotFound(library: names.joined(separator: " or "), tried: tried, reasons: reasons)
    }

    /// Loads a library globally so that later `dlopen`s by soname find it; false when it fails.
    @discardableResult
    public static func preload(_ path: String) -> Bool {
        dlopen(path, RTLD_NOW | RTLD_GLOBAL) != nil
    }

    /// The address of `symbol`, or an error naming the library and the symbol.
    public func symbol(_ symbol: String) throws -> UnsafeMutableRawPointer {
        guard let p = dlsym(handle, symbol) else {
            throw CUDAError.missingSymbol(library: path, symbol: symbol)
        }
        return p
    }

    /// The address of `symbol` cast to a C function type.
    public func function<F>(_ symbol: String, as type: F.Type = F.self) throws -> F {
        unsafeBitCast(try self.symbol(symbol), to: F.self)
    }

    /// The address of `symbol`, or nil when this version of the library lacks it.
    public func optionalFunction<F>(_ symbol: String, as type: F.Type = F.self) -> F? {
        guard let p = dlsym(handle, symbol) else { return nil }
        return unsafeBitCast(p, to: F.self)
    }

    private static func lastDLError() -> String {
        if let e = dlerror() { return String(cString: e) }
        return "dlopen failed"
    }

    /// The file the loader picked for `name`, from /proc/self/maps (Linux), for messages.
    private static func resolvedPath(of name: String) -> String? {
        guard let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8) else { return nil }
        // The file may carry a longer version than the soname: libcuda.so.1 -> libcuda.so.580.159.04.
        let stem = name.range(of: ".so").map { String(name[..<$0.upperBound]) } ?? name
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = line[slash...]
            if let file = path.split(separator: "/").last, file.hasPrefix(stem) { return String(path) }
        }
        return nil
    }
}

/// Where NVIDIA libraries are looked for, in order.
///
/// 1. `HIFC_CUDA_LIBRARY_PATH` (colon-separated directories), 2. `$CUDA_HOME/lib64` and
/// `$CUDA_PATH/lib64`, 3. `/usr/local/cuda/lib64`, 4. the `nvidia` packages of the Python
/// environment (`site-packages/nvidia/*/lib`, e.g. `nvidia/cu13/lib` or `nvidia/cuda_nvrtc/lib`),
/// then the loader's own path (tried by `DynamicLibrary.open` last).
public enum LibrarySearch {
    /// The directories searched, in order; computed once per process.
    public static func directories() -> [String] { cached }

    private static let cached: [String] = {
        let env = ProcessInfo.processInfo.environment
        var dirs: [String] = []
        if let extra = env["HIFC_CUDA_LIBRARY_PATH"] {
            dirs += extra.split(separator: ":").map(String.init)
        }
        for key in ["CUDA_HOME", "CUDA_PATH"] {
            if let home = env[key], !home.isEmpty { dirs += [home + "/lib64", home + "/lib"] }
        }
        dirs.append("/usr/local/cuda/lib64")
        for site in pythonSitePackages() {
            let nvidia = site + "/nvidia"
            guard let subdirs = try? FileManager.default.contentsOfDirectory(atPath: nvidia) else { continue }
            for sub in subdirs.sorted() {
                let lib = nvidia + "/" + sub + "/lib"
                if FileManager.default.fileExists(atPath: lib) { dirs.append(lib) }
            }
        }
        var seen = Set<String>()
        return dirs.filter { seen.insert($0).inserted }
    }()

    /// The site-packages directories of the Python environment: `$VIRTUAL_ENV`, then what
    /// `python3` itself reports (`HIFC_PYTHON` names another interpreter).
    static func pythonSitePackages() -> [String] {
        let env = ProcessInfo.processInfo.environment
        var sites: [String] = []
        if let venv = env["VIRTUAL_ENV"], let libs = try? FileManager.default.contentsOfDirectory(atPath: venv + "/lib") {
            sites += libs.filter { $0.hasPrefix("python") }.map { venv + "/lib/" + $0 + "/site-packages" }
        }
        let python = env["HIFC_PYTHON"] ?? "python3"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-c", "import site,sys; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()]))"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            if process.terminationStatus == 0, let text = String(data: data, encoding: .utf8) {
                sites += text.split(separator: "\n").map(String.init)
            }
        } catch {
            // No Python: only the other places are searched.
        }
        return sites
    }
}
