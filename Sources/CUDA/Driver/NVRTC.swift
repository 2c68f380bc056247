import Foundation

/// NVIDIA's run-time compiler (`libnvrtc.so.13` or `.12`), loaded by `dlopen`.
///
/// Turns CUDA C source into a cubin for one GPU architecture. It needs no GPU, so CI uses it to
/// check that every kernel compiles.
public struct NVRTC: @unchecked Sendable {
    // C function pointers are immutable addresses; sharing them across threads is safe.
    typealias Status = Int32
    typealias Program = OpaquePointer
    let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Status
    let nvrtcGetErrorString: @convention(c) (Status) -> UnsafePointer<CChar>?
    let nvrtcCreateProgram:
        @convention(c) (
            UnsafeMutablePointer<Program?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
            UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
        ) -> Status
    let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<Program?>) -> Status
    let nvrtcCompileProgram: @convention(c) (Program?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Status
    let nvrtcGetProgramLogSize: @convention(c) (Program?, UnsafeMutablePointer<Int>) -> Status
    let nvrtcGetProgramLog: @convention(c) (Program?, UnsafeMutablePointer<CChar>) -> Status
    let nvrtcGetCUBINSize: @convention(c) (Program?, UnsafeMutablePointer<Int>) -> Status
    let nvrtcGetCUBIN: @convention(c) (Program?, UnsafeMutablePointer<UInt8>) -> Status
    let nvrtcGetPTXSize: @convention(c) (Program?, UnsafeMutablePointer<Int>) -> Status
    let nvrtcGetPTX: @convention(c) (Program?, UnsafeMutablePointer<CChar>) -> Status

    /// The library the entry points came from.
    public let library: DynamicLibrary

    init(library l: DynamicLibrary) throws {
        library = l
        nvrtcVersion = try l.function("nvrtcVersion")
        nvrtcGetErrorString = try l.function("nvrtcGetErrorString")
        nvrtcCreateProgram = try l.function("nvrtcCreateProgram")
        nvrtcDestroyProgram = try l.function("nvrtcDestroyProgram")
        nvrtcCompileProgram = try l.function("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try l.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try l.function("nvrtcGetProgramLog")
        nvrtcGetCUBINSize = try l.function("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try l.function("nvrtcGetCUBIN")
        nvrtcGetPTXSize = try l.function("nvrtcGetPTXSize")
        nvrtcGetPTX = try l.function("nvrtcGetPTX")
    }

    /// NVRTC, loaded once per process (newest major version first).
    public static func shared() throws -> NVRTC { try loaded.get() }

    private static let loaded: Result<NVRTC, Error> = Result {
        let library = try DynamicLibrary.open(anyOf: ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"])
        // NVRTC dlopens its builtins library by soname when it compiles; outside the loader path
        // (a Python wheel's directory) that fails unless the builtins are already loaded.
        let dir = (library.path as NSString).deletingLastPathComponent
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        for file in files.sorted() where file.hasPrefix("libnvrtc-builtins.so") {
            DynamicLibrary.preload(dir + "/" + file)
        }
        return try NVRTC(library: library)
    }

    /// The compiler's version as "13.0".
    public var version: String {
        var major: Int32 = 0
        var minor: Int32 = 0
        _ = nvrtcVersion(&major, &minor)
        return "\(major).\(minor)"
    }

    private func check(_ status: Status, _ call: String, log: String = "") throws {
        guard status != 0 else { return }
        let text = nvrtcGetErrorString(status).map { String(cString: $0) } ?? "unknown"
        throw CUDAError.nvrtc(call: call, code: status, message: text, log: log)
    }

    /// Compiles `source` (named `name` in messages) to a cubin for `architecture` ("sm_90").
    /// A compile error carries the compiler's log.
    public func compile(source: String, name: String, architecture: String, options extra: [String] = []) throws -> [UInt8] {
        try compiled(source: source, name: name, architecture: architecture, options: extra) { program in
            var size = 0
            try check(nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize(\(name))")
            var cubin = [UInt8](repeating: 0, count: size)
            try check(nvrtcGetCUBIN(program, &cubin), "nvrtcGetCUBIN(\(name))")
            return cubin
        }
    }

    /// The PTX that `compile` makes its cubin from, for tests that read the generated code.
    public func ptx(source: String, name: String, architecture: String) throws -> String {
        try compiled(source: source, name: name, architecture: architecture, options: []) { program in
            var size = 0
            try check(nvrtcGetPTXSize(program, &size), "nvrtcGetPTXSize(\(name))")
            var text = [CChar](repeating: 0, count: max(size, 1))
            try check(nvrtcGetPTX(program, &text), "nvrtcGetPTX(\(name))")
            return String(nulTerminated: text)
        }
    }

    private func compiled<R>(
        source: String, name: String, architecture: String, options extra: [String], _ output: (Program?) throws -> R
    ) throws -> R {
        var program: Program?
        try check(nvrtcCreateProgram(&program, source, name, 0, nil, nil), "nvrtcCreateProgram(\(name))")
        defer { _ = nvrtcDestroyProgram(&program) }
        let options = ["--gpu-architecture=\(architecture)", "--std=c++17", "-default-device"] + extra
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let status = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer { buf in
            nvrtcCompileProgram(program, Int32(buf.count), buf.baseAddress)
        }
        var logSize = 0
        _ = nvrtcGetProgramLogSize(program, &logSize)
        var logText = ""
        if logSize > 1 {
            var log = [CChar](repeating: 0, count: logSize)
            _ = nvrtcGetProgramLog(program, &log)
            logText = String(nulTerminated: log)
        }
        try check(status, "nvrtcCompileProgram(\(name), \(architecture))", log: logText)
        return try output(program)
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
