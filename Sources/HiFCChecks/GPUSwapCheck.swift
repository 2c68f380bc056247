import Backend
import CUDA
import FlashStore
import Foundation
import HiFCCore

#if canImport(Glibc)
    import Glibc
#endif

/// `hifc check gpu --swap-dir`: swaps a pool of random KV blocks out to a file and back through
/// cuFile, through the O_DIRECT staging fallback, and to pinned DRAM (raw copies, and the
/// engine's `CUDAHostSwap` beside them), checks every block's CRC32C afterwards (losslessness),
/// and times each direction.
public struct GPUSwapCheck {
    let device: CUDADevice
    let kernels: CUDAKernels
    let stream: CUDAStream

    /// A check over `kernels`' device.
    public init(kernels: CUDAKernels) throws {
        self.kernels = kernels
        device = kernels.library.device
        stream = try device.makeStream()
    }

    /// Results and a table of timings (GB/s) for `blocks` blocks of `layout` through a file in `directory`.
    public func run(directory: String, layout: KVBlockLayout, blocks: Int) async throws -> (results: [GPUCheckResult], timings: [String]) {
        var results: [GPUCheckResult] = []
        var timings: [String] = []
        let pool = try DeviceBlockPool(device: device, layout: layout, blocks: blocks)
        let bytes = layout.blockBytes
        let scratch = try device.allocate(CUDAKernels.checksumScratchBytes(blocks: blocks, bytes: bytes))
        try kernels.fillRandom(pool.buffer.address, bytes: pool.buffer.bytes, seed: UInt64.random(in: 1...UInt64.max), stream: stream)
        // The GPU's CRC32C of the first `length` bytes of each of `range`'s pool blocks.
        func checksums(_ range: Range<Int>? = nil, length: Int = bytes) throws -> [UInt32] {
            try kernels.crc32c(blocks: try (range ?? 0..<blocks).map { try pool.address(of: $0) }, bytes: length, scratch: scratch, stream: stream)
        }
        let before = try checksums()
        // The GPU's CRC against the host's, on two whole blocks.
        var crcWrong = 0
        for b in [0, blocks - 1] {
            let host = try [UInt8](unsafeUninitializedCapacity: bytes) { buf, n in
                try device.copy(from: try pool.address(of: b), to: UnsafeMutableRawPointer(buf.baseAddress!), bytes: bytes)
                n = bytes
            }
            if CRC32C.checksum(of: host) != before[b] { crcWrong += 1 }
            // A length that ends inside a piece and inside a 16-byte word: the kernel's byte tail.
            let odd = max(1, bytes - CUDAKernels.checksumPieceBytes / 2 - 13)
            let gpuOdd = try checksums(b..<(b + 1), length: odd)
            if CRC32C.checksum(of: Array(host[0..<odd])) != gpuOdd[0] { crcWrong += 1 }
        }
        results.append(
            GPUCheckResult(
                name: "GPU CRC32C of \(bytes >> 20) MiB blocks and of odd lengths vs host (wrong blocks)", error: Double(crcWrong), tolerance: 0))
        // The checksum's own speed: every pool block in one call, and in calls of 16 as a swap of a
        // 16-block sequence makes them (launch, wait, copy and the host's combine included).
        var t0 = Date()
        _ = try checksums()
        let crcWhole = Double(blocks * bytes) / 1e9 / Date().timeIntervalSince(t0)
        t0 = Date()
        for first in stride(from: 0, to: blocks, by: 16) {
            _ = try checksums(first..<min(blocks, first + 16))
        }
        let crcSixteen = Double(blocks * bytes) / 1e9 / Date().timeIntervalSince(t0)
        timings.append(
            String(
                format: "CRC32C on the GPU  %7.1f GB/s in one call of %d blocks, %7.1f GB/s in calls of 16 (%d MiB blocks)",
                crcWhole, blocks, crcSixteen, bytes >> 20))
        let distinct = Set(before).count
        results.append(GPUCheckResult(name: "random blocks are distinct (repeated checksums)", error: Double(blocks - distinct), tolerance: 0))

        func verify(_ name: String) throws {
            let after = try checksums()
            let lost = zip(before, after).filter { $0 != $1 }.count
            results.append(GPUCheckResult(name: "\(name): blocks changed by a round trip of \(blocks) blocks", error: Double(lost), tolerance: 0))
        }
        func poison() throws {
            try stream.fill(pool.buffer.address, value: 0xff, bytes: pool.buffer.bytes)
            try stream.synchronize()
        }
        let gb = Double(blocks * bytes) / 1e9

        // swap-dram. First the raw pinned copy, the link's speed: the whole pool in one
        // cuMemcpyAsync each way between device memory and a pinned buffer.
        let poolBytes = blocks * pool.blockStride
        let rawBytes = Double(poolBytes) / 1e9
        let raw = try device.allocatePinned(poolBytes)
        t0 = Date()
        try stream.copy(from: pool.buffer.address, to: raw.pointer, bytes: poolBytes)
        try stream.synchronize()
        let rawOut = rawBytes / Date().timeIntervalSince(t0)
        try poison()
        t0 = Date()
        try stream.copy(from: UnsafeRawPointer(raw.pointer), to: pool.buffer.address, bytes: poolBytes)
        try stream.synchronize()
        let rawIn = rawBytes / Date().timeIntervalSince(t0)
        try verify("swap-dram raw pinned copy")
        // Then the engine's path (`CUDAHostSwap`, what `swap-dram` uses on a GPU): a pool of pinned
        // host blocks, each sequence of 16 blocks (1K tokens of the 8B model) a transfer of its
        // own, all issued at once as a starved engine issues them, on the swapper's copy streams,
        // each resumed by a stream callback.
        let host = try CUDAHostSwap(pool: pool, compute: stream, capacityBlocks: blocks)
        let sequences = stride(from: 0, to: blocks, by: 16).map { Array($0..<min(blocks, $0 + 16)) }
        func hostKeys(_ seq: [Int]) -> [BlockKey] { seq.map { BlockKey.sequence(UInt64(seq[0]), block: $0 - seq[0]) } }
        t0 = Date()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for seq in sequences { group.addTask { try await host.swapOut(blocks: seq, keys: hostKeys(seq)) } }
            try await group.waitForAll()
        }
        let dramOut = gb / Date().timeIntervalSince(t0)
        try poison()
        t0 = Date()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for seq in sequences { group.addTask { try await host.swapIn(keys: hostKeys(seq), into: seq) } }
            try await group.waitForAll()
        }
        let dramIn = gb / Date().timeIntervalSince(t0)
        try verify("swap-dram through the engine's pinned pool (CUDAHostSwap, sequences of 16 blocks)")
        // A full pool refuses more, and a key it does not hold is refused, never read.
        var refusals = 0
        do { try await host.swapOut(blocks: [0], keys: [BlockKey.sequence(UInt64(blocks) + 1, block: 0)]) } catch HostSwapError.full { refusals += 1 }
        do { try await host.swapIn(keys: [BlockKey.sequence(UInt64(blocks) + 1, block: 0)], into: [0]) } catch HostSwapError.missing { refusals += 1 }
        results.append(
            GPUCheckResult(
                name: "swap-dram: a swap-out past the pinned pool's capacity and a swap-in of a key it lacks are refused (not refused)",
                error: Double(2 - refusals), tolerance: 0))
        let share = min(dramOut / rawOut, dramIn / rawIn)
        results.append(
            GPUCheckResult(
                name: String(
                    format: "swap-dram engine path at %.0f%% / %.0f%% of the raw pinned copy out / in (error = shortfall below 80%%)",
                    100 * dramOut / rawOut, 100 * dramIn / rawIn),
                error: max(0, 0.8 - share), tolerance: 0))
        timings.append(
            String(
                format: "swap-dram   out %6.2f GB/s   in %6.2f GB/s   (raw pinned copy, the whole pool in one cuMemcpyAsync each way)", rawOut, rawIn)
        )
        timings.append(
            String(format: "swap-dram   out %6.2f GB/s   in %6.2f GB/s   ", dramOut, dramIn)
                + "(engine path: CUDAHostSwap, \(blocks) x \(bytes >> 20) MiB in sequences of 16, all in flight; \(String(format: "%.0f%% / %.0f%%", 100 * dramOut / rawOut, 100 * dramIn / rawIn)) of raw)"
        )

        let path = directory + "/hifc-swap-check-\(getpid())"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | DirectIO.directFlag, 0o600)
        guard fd >= 0 else { throw CUDAError.io(call: "open(O_DIRECT)", path: path, errno: errno) }
        defer {
            close(fd)
            unlink(path)
        }
        guard ftruncate(fd, off_t(blocks * layout.blockStride)) == 0 else { throw CUDAError.io(call: "ftruncate", path: path, errno: errno) }
        // Each path with one request in flight, as `dd` uses the disk, with four, and with eight,
        // as the store's swapper does.
        var cuFileMissing = false
        for (useCUFile, depth) in [(true, 1), (true, 4), (true, 8), (false, 1), (false, 4), (false, 8)] where !(useCUFile && cuFileMissing) {
            let io: BlockFileIO
            if useCUFile {
                do {
                    let c = try CUFileBlockIO(pool: pool, fd: fd, filePath: path, depth: depth)
                    if let note = c.registrationNote { timings.append("cuFile buffer registration refused: \(note)") }
                    io = c
                } catch {
                    timings.append("cuFile unavailable (\(error)); only the fallback is checked")
                    cuFileMissing = true
                    continue
                }
            } else {
                io = try StagedBlockIO(pool: pool, fd: fd, filePath: path, device: device, depth: depth)
            }
            // Sequential slots, as the log-structured store writes them, read back in order.
            let extents = (0..<blocks).map { BlockFileExtent(block: $0, fileOffset: $0 * layout.blockStride) }
            let ready = try device.makeEvent()
            try ready.record(on: stream)
            t0 = Date()
            try io.write(extents, after: ready)
            // Flushed before the clock stops, as `dd conv=fsync` is timed, and so that the reads
            // below do not race the disk's write-back.
            guard fsync(fd) == 0 else { throw CUDAError.io(call: "fsync", path: path, errno: errno) }
            let wr = gb / Date().timeIntervalSince(t0)
            try poison()
            t0 = Date()
            try io.read(extents)?.synchronize()
            let rd = gb / Date().timeIntervalSince(t0)
            try verify("swap-flash via \(io.path)")
            timings.append(
                String(format: "swap-flash  out %6.2f GB/s   in %6.2f GB/s   ", wr, rd) + "(raw file, \(io.path), \(blocks) x \(bytes >> 20) MiB)")
        }

        // Through the flash store: reserve, GPU checksums, commit; locate, read, checksums checked.
        for useCUFile in [true, false] {
            let storeDir = directory + "/hifc-store-check-\(getpid())-\(useCUFile)"
            try FileManager.default.createDirectory(atPath: storeDir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: storeDir) }
            let store = try FlashStore(
                configuration: FlashStoreConfiguration(
                    paths: [storeDir], capacityPerPath: ByteSize(Int64(blocks * bytes * 3 + (512 << 20))), segmentSize: .mib(256)))
            defer { store.close() }
            let swapper = CUDAFlashSwap(pool: pool, store: store, kernels: kernels, compute: stream, useCUFile: useCUFile)
            // Sequences of 16 blocks (1K tokens of the 8B model), then the whole pool as one
            // sequence, as the engine swaps a sequence of the paper's 8.7K-token prompts: one
            // reservation, one read.
            func keys(_ seq: [Int], round: Int) -> [BlockKey] { seq.indices.map { BlockKey.sequence(UInt64(round * blocks + seq[0]), block: $0) } }
            var name = ""
            let lengths = [16, blocks]
            for (round, length) in lengths.enumerated() {
                let sequences = stride(from: 0, to: blocks, by: length).map { Array($0..<min(blocks, $0 + length)) }
                t0 = Date()
                for seq in sequences { try await swapper.swapOutToFlash(blocks: seq, keys: keys(seq, round: round)) }
                sync()  // as for the raw file: flushed before the clock stops
                let wr = gb / Date().timeIntervalSince(t0)
                try poison()
                t0 = Date()
                for seq in sequences { try await swapper.swapInFromFlash(keys: keys(seq, round: round), into: seq) }
                try stream.synchronize()
                let rd = gb / Date().timeIntervalSince(t0)
                name = "swap-flash through the flash store via " + swapper.pathsInUse.joined(separator: ", ")
                try verify(name + ", sequences of \(length) blocks")
                timings.append(
                    String(format: "swap-flash  out %6.2f GB/s   in %6.2f GB/s   ", wr, rd)
                        + "(flash store, \(swapper.pathsInUse.joined()), \(blocks) x \(bytes >> 20) MiB in sequences of \(length), CRC32C on the GPU)"
                )
            }
            // The last round's slots read again by the swapper's own I/O path alone (no locate,
            // checksums or stream per swap): what the store's file gives at that depth, which
            // tells the file's layout (a header page before each payload, a preallocated file)
            // apart from the swap's own costs when the store reads slower than the raw file.
            let located = keys(Array(0..<blocks), round: lengths.count - 1).compactMap { store.locate($0) }
            if located.count == blocks, let fd = located.first?.fileDescriptor, located.allSatisfy({ $0.fileDescriptor == fd }) {
                let io = try swapper.io(for: fd, path: located[0].regionFile)
                try poison()
                t0 = Date()
                try io.read(located.enumerated().map { BlockFileExtent(block: $0.offset, fileOffset: Int($0.element.payloadOffset)) })?.synchronize()
                let rd = gb / Date().timeIntervalSince(t0)
                try verify(name + ", its slots read without the store")
                timings.append(
                    String(format: "swap-flash                 in %6.2f GB/s   ", rd)
                        + "(the store's slots through \(io.path) alone, \(blocks) x \(bytes >> 20) MiB)")
            }
            // A block damaged on flash must be refused, never handed back as data. Block 0 is
            // kept aside meanwhile, since the refused read lands in it.
            if let l = store.locate(keys([0], round: 0)[0]) {
                let saved = try device.allocate(bytes)
                try stream.copy(from: try pool.address(of: 0), to: saved.address, bytes: bytes)
                try stream.synchronize()
                let p = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
                defer { p.deallocate() }
                for i in 0..<4096 { p.storeBytes(of: UInt8.random(in: 0...255), toByteOffset: i, as: UInt8.self) }
                let written = pwrite(l.fileDescriptor, p, 4096, off_t(l.payloadOffset))
                var refused = 0.0
                do { try await swapper.swapInFromFlash(keys: [l.key], into: [0]) } catch { refused = 1 }
                results.append(
                    GPUCheckResult(
                        name: "\(name): a damaged block is refused (not refused = 1)", error: 1 - refused, tolerance: 0,
                        failure: written == 4096 ? nil : "could not damage the slot: pwrite returned \(written)"))
                try stream.copy(from: saved.address, to: try pool.address(of: 0), bytes: bytes)
                try stream.synchronize()
            }
        }
        return (results, timings)
    }
}
