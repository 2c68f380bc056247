import FlashStore
import Foundation

/// What `hifc doctor` reports about the NVIDIA stack: each library (path and version), each GPU,
/// and whether cuFile can register a file on the flash path (and why not). Every library is
/// looked for even when one before it is missing, so one run shows everything that is absent.
public enum CUDAProbe {
    /// One finding: a name, and either what was found or why it was not.
    public struct Line: Sendable, CustomStringConvertible {
        /// What was probed ("libcuda", "cuda:0", "cuFile on /flash").
        public var item: String
        /// Whether it is usable.
        public var ok: Bool
        /// What was found, or the error in one line.
        public var detail: String
        /// The longer account behind a failure, where there is one: every path a missing library
        /// was looked for in, with the reason each failed.
        public var trace: String?

        public var description: String { "\(ok ? "ok  " : "FAIL") \(item): \(detail)" + (trace.map { "\n\($0)" } ?? "") }
    }

    /// What was found.
    public struct Report: Sendable {
        /// One line per library, GPU and cuFile check, in the order they were probed.
        public var lines: [Line]
        /// GPUs the driver reports (0 without a driver).
        public var gpus: Int
    }

    /// Probes every library and GPU; when `flashPath` is given, also cuFile on a scratch file
    /// created (and removed) in that directory.
    public static func run(flashPath: String? = nil) -> Report {
        var lines: [Line] = []
        var haveDriver = false
        var gpus = 0
        do {
            let api = try DriverAPI.shared()
            lines.append(Line(item: "libcuda", ok: true, detail: "\(api.library.path), driver API \(try CUDADevice.driverVersion())"))
            haveDriver = true
        } catch {
            lines.append(failure("libcuda", error))
        }
        do {
            let nvrtc = try NVRTC.shared()
            lines.append(Line(item: "libnvrtc", ok: true, detail: "\(nvrtc.library.path), version \(nvrtc.version)"))
        } catch {
            lines.append(failure("libnvrtc", error))
        }
        var firstDevice: CUDADevice?
        if haveDriver {
            do {
                gpus = try CUDADevice.count()
                if gpus == 0 { lines.append(Line(item: "GPUs", ok: false, detail: "the driver reports none")) }
                for i in 0..<gpus {
                    let d = try CUDADevice(ordinal: i)
                    let mem = try d.memoryInfo()
                    lines.append(Line(item: "cuda:\(i)", ok: true, detail: "\(d.info), \(mem.free >> 20) MiB free"))
                    if firstDevice == nil { firstDevice = d }
                }
            } catch {
                lines.append(failure("GPUs", error))
            }
        }
        if let d = firstDevice {
            do {
                let blas = try CUBLAS(device: d)
                lines.append(Line(item: "libcublas", ok: true, detail: "\(blas.library.path), version \(blas.version)"))
            } catch {
                lines.append(failure("libcublas", error))
            }
        } else {
            lines.append(found("libcublas", anyOf: ["libcublas.so.13", "libcublas.so.12", "libcublas.so"], note: "no GPU to create a handle on"))
        }
        if haveDriver {
            do {
                let cufile = try CUFile.shared()
                lines.append(Line(item: "libcufile", ok: true, detail: "\(cufile.library.path)" + (cufile.version.map { ", version \($0)" } ?? "")))
                if let flashPath, let d = firstDevice {
                    lines.append(probeCUFile(cufile: cufile, device: d, directory: flashPath))
                }
            } catch {
                lines.append(failure("libcufile", error))
            }
        } else {
            lines.append(found("libcufile", anyOf: ["libcufile.so.0", "libcufile.so"], note: "no CUDA driver to open it with"))
        }
        return Report(lines: lines, gpus: gpus)
    }

    /// Whether one of `names` can be loaded, where the library cannot be put to use here.
    static func found(_ item: String, anyOf names: [String], note: String) -> Line {
        do {
            let library = try DynamicLibrary.open(anyOf: names)
            return Line(item: item, ok: true, detail: "\(library.path) (\(note))")
        } catch {
            return failure(item, error)
        }
    }

    /// A failed probe: a missing library in one line, with every path tried as its trace.
    static func failure(_ item: String, _ error: Error) -> Line {
        if case CUDAError.libraryNotFound(_, let tried, _) = error {
            return Line(item: item, ok: false, detail: "not found (\(tried.count) places tried)", trace: "\(error)")
        }
        return Line(item: item, ok: false, detail: "\(error)")
    }

    /// Registers a scratch file in `directory` and a device buffer with cuFile and moves 1 MiB
    /// each way, so the answer is what a swap would meet.
    static func probeCUFile(cufile: CUFile, device: CUDADevice, directory: String) -> Line {
        let item = "cuFile on \(directory)"
        let path = directory + "/.hifc-cufile-probe-\(getpid())"
        let fd = open(path, O_RDWR | O_CREAT | DirectIO.directFlag, 0o600)
        guard fd >= 0 else {
            return Line(item: item, ok: false, detail: "cannot open \(path) with O_DIRECT: \(String(cString: strerror(errno)))")
        }
        defer {
            close(fd)
            unlink(path)
        }
        do {
            let handle = try cufile.register(fd: fd, path: path)
            let bytes = 1 << 20
            let buf = try device.allocate(bytes)
            try cufile.registerBuffer(buf.address, bytes: bytes)
            defer { try? cufile.deregisterBuffer(buf.address) }
            try handle.write(from: buf.address, bytes: bytes, fileOffset: 0)
            try handle.read(into: buf.address, bytes: bytes, fileOffset: 0)
            return Line(item: item, ok: true, detail: "file and buffer registered, 1 MiB written and read back")
        } catch {
            return Line(item: item, ok: false, detail: "\(error) (swaps will use the O_DIRECT staging fallback)")
        }
    }
}
