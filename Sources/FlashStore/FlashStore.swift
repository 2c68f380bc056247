import Foundation
import HiFCCore

/// The flash KV cache store: blocks of KV cache kept in a fixed, preallocated region per flash
/// path, written log-structured with large sequential O_DIRECT writes, each slot checksummed,
/// the mapping rebuilt by a scan after any restart.
///
/// Usage:
/// ```swift
/// let store = try FlashStore(configuration: .init(paths: ["/mnt/nvme0/hifc"], capacityPerPath: .gib(200)))
/// try await store.put([FlashPutItem(key: key, bytes: payload)])
/// let results = await store.get([key], into: [FlashReadTarget(buffer)])
/// ```
/// Threading: every method may be called from any task at once. A batch's I/O runs on the
/// store's pool of I/O threads; callers await it without blocking.
///
/// Guarantees: a `put` that returns has its bytes on the device (O_DIRECT) and mapped; a `put`
/// that throws leaves the previous mapping of its keys untouched. A `get` never returns bytes whose
/// header or CRC32C do not match what was put. Deletes are not journaled: after a restart, a
/// deleted content-addressed block may be found again (with its correct bytes); blocks of swapped
/// sequences are all reclaimed at restart.
public final class FlashStore: @unchecked Sendable {
    /// The configuration the store was opened with.
    public let configuration: FlashStoreConfiguration
    /// The geometry of every region.
    public let geometry: FlashRegionGeometry
    let regions: [FlashRegionFile]
    let pool: IOThreadPool
    private let faultInjector: (any IOFaultInjector)?
    private let placement: FlashPlacement
    private let lock = NSLock()
    private let superblockLock = NSLock()
    /// Extra-copy writes in flight (swarm placement), which `close` waits for.
    let copyWrites = DispatchGroup()
    /// Read and written only inside `locked` (internal for FlashStore+Copies.swift).
    var state: State

    /// Everything the lock protects.
    struct State {
        var map = FlashSlotMap()
        var allocators: [FlashSegmentAllocator]
        var superblocks: [RegionSuperblock] = []
        var pattern = FlashWritePattern()
        var nextGeneration: UInt64 = 1
        var rotation = 0
        var bytesRead: Int64 = 0
        var reads: Int64 = 0
        var failedReads: Int64 = 0
        var compactedSlots: Int64 = 0
        var compacting = false
        var reservations: [UInt64: [PlannedSlot]] = [:]
        var nextReservation: UInt64 = 1
        var lastPersist: Double = 0
        var closed = false
        var recovery = FlashRecoveryReport()
        /// Swarm placement's state; nil under the other policies.
        var swarm: SwarmPlacement?
        /// Extra copies of blocks (swarm placement), besides the one in `map`; lost at restart.
        var copies: [BlockKey: [FlashSlotLocation]] = [:]
        /// Bytes of I/O issued and not yet done, per path.
        var queuedBytes: [Int64] = []
        /// Bytes read per path.
        var pathBytesRead: [Int64] = []
        /// Bytes of extra copies written since the store opened.
        var copyBytesWritten: Int64 = 0
    }

    /// A slot chosen for one block of a batch.
    struct PlannedSlot: Sendable {
        var key: BlockKey
        var path: Int
        var placement: FlashSegmentAllocator.Placement
        var length: Int
        var generation: UInt64
        var footprint: Int { FlashLayout.slotFootprint(payloadLength: length) }

        func location(checksum: UInt32) -> FlashSlotLocation {
            FlashSlotLocation(
                path: path, segment: placement.segment, offset: placement.offset,
                length: length, generation: generation, checksum: checksum)
        }
    }

    /// Opens (creating and preallocating where needed) the region on every path and rebuilds the
    /// slot map from them. Throws `FlashStoreError` naming the path and cause when a path is
    /// missing, unwritable, refuses O_DIRECT, lacks space or holds a region of other geometry.
    public init(configuration: FlashStoreConfiguration, faultInjector: (any IOFaultInjector)? = nil) throws {
        guard !configuration.paths.isEmpty else { throw FlashStoreError.noPaths }
        let geometry: FlashRegionGeometry
        do {
            geometry = try FlashRegionGeometry(
                capacity: configuration.capacityPerPath.bytes,
                segmentSize: Int(configuration.segmentSize.bytes))
        } catch {
            throw FlashStoreError.badGeometry(error.description)
        }
        var regions: [FlashRegionFile] = []
        do {
            for path in configuration.paths {
                regions.append(try FlashRegionFile(path: path, capacity: geometry.capacity, fileName: configuration.regionName))
            }
        } catch {
            regions.forEach { $0.close() }
            throw error
        }
        self.configuration = configuration
        self.geometry = geometry
        self.regions = regions
        self.faultInjector = faultInjector
        self.placement = FlashPlacement(policy: configuration.placement, pathCount: regions.count, gpuIndex: configuration.gpuIndex)
        self.pool = IOThreadPool(width: configuration.queueDepth)
        self.state = State(allocators: [])
        state.queuedBytes = Array(repeating: 0, count: regions.count)
        state.pathBytesRead = Array(repeating: 0, count: regions.count)
        if configuration.placement == .swarm {
            let budget = configuration.replicationBudget?.bytes ?? geometry.capacity * Int64(regions.count) / 10
            state.swarm = SwarmPlacement(pathCount: regions.count, settings: .init(replicationBudgetBytes: budget))
        }
        do {
            try recover()
        } catch {
            pool.shutdown()
            regions.forEach { $0.close() }
            throw error
        }
        persistSuperblocks(force: true)
    }

    deinit {
        if !state.closed {
            pool.shutdown()
            regions.forEach { $0.close() }
        }
    }

    /// Reads each region's superblock, scans its segments and maps the content-addressed slots
    /// found; slots of swapped sequences are left dead (reclaimed).
    private func recover() throws {
        let now = Date().timeIntervalSince1970
        var report = FlashRecoveryReport()
        var scans: [[RegionScanner.SegmentScan]] = []
        var map = FlashSlotMap()
        var nextGeneration: UInt64 = 1
        for region in regions {
            if let superblock = try region.readSuperblock() {
                guard superblock.capacity == geometry.capacity, superblock.segmentSize == geometry.segmentSize else {
                    throw FlashStoreError.regionMismatch(
                        path: region.regionFile,
                        found: "capacity \(ByteSize(superblock.capacity)), segments of \(ByteSize(Int64(superblock.segmentSize)))",
                        configured: "capacity \(ByteSize(geometry.capacity)), segments of \(ByteSize(Int64(geometry.segmentSize)))")
                }
                state.superblocks.append(superblock)
                scans.append(try RegionScanner(region: region, geometry: geometry).scan(on: pool))
            } else {
                state.superblocks.append(
                    RegionSuperblock(
                        capacity: geometry.capacity, segmentSize: geometry.segmentSize,
                        wear: WearLedger(createdAt: now), updateCount: 0))
                scans.append([])
                report.regionsCreated += 1
            }
        }
        for (path, segments) in scans.enumerated() {
            for (segment, scan) in segments.enumerated() {
                if scan.resynchronized { report.segmentsResynchronized += 1 }
                for header in scan.slots {
                    nextGeneration = max(nextGeneration, header.generation + 1)
                    guard header.key.kind == .content else {
                        report.sequenceSlotsReclaimed += 1
                        continue
                    }
                    let location = FlashSlotLocation(
                        path: path, segment: segment, offset: header.slotOffset, length: header.payloadLength,
                        generation: header.generation, checksum: header.payloadChecksum)
                    if map.insert(header.key, at: location) != nil { report.supersededCopies += 1 }
                }
            }
        }
        report.contentSlotsRecovered = map.count
        var live: [[(slots: Int, bytes: Int)]] = scans.map { Array(repeating: (0, 0), count: $0.count) }
        for (_, location) in map.entries {
            live[location.path][location.segment].slots += 1
            live[location.path][location.segment].bytes += location.footprint
        }
        let firstSequence = UInt64(now * 1_000_000)
        state.allocators = scans.enumerated().map { path, segments in
            var allocator = FlashSegmentAllocator(geometry: geometry, firstSequence: segments.isEmpty ? firstSequence : 1)
            for (segment, scan) in segments.enumerated() where scan.sequence != 0 {
                allocator.restore(
                    segment: segment, sequence: scan.sequence, frontier: scan.frontier,
                    liveSlots: live[path][segment].slots, liveBytes: live[path][segment].bytes)
            }
            return allocator
        }
        state.map = map
        state.nextGeneration = nextGeneration
        state.recovery = report
    }

    // MARK: Locking

    func locked<T>(_ body: (inout State) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&state)
    }

    // MARK: Batched put, get, delete

    /// Stores a batch of blocks. The blocks of one path land contiguously, in order, in that
    /// path's open segment. When it returns, every block is on the device and mapped, replacing
    /// any earlier slot of the same key. When it throws (region full, ENOSPC, EIO, ...) no block
    /// of the batch is mapped and earlier blocks are untouched.
    public func put(_ items: [FlashPutItem]) async throws {
        guard !items.isEmpty else { return }
        try validate(keys: items.map(\.key), lengths: items.map(\.bytes.count))
        let slots = try await planWithCompaction(keys: items.map(\.key), lengths: items.map(\.bytes.count))
        locked { state in
            for slot in slots.sorted(by: { ($0.path, $0.placement.offset) < ($1.path, $1.placement.offset) }) {
                record(write: slot.footprint, at: slot.placement.offset, path: slot.path, in: &state)
            }
        }
        let checksums = ChecksumBox(count: slots.count)
        let jobs = slots.enumerated().map { index, slot in
            TrackedJob(
                writeJob(slot, payload: items[index].bytes, knownChecksum: nil, checksums: checksums, index: index), path: slot.path,
                bytes: slot.footprint)
        }
        let codes = await runTracked(jobs)
        try publish(slots, codes: codes, checksums: checksums.values)
        persistSuperblocks(force: false)
        await compactIfNeeded()
    }

    /// Reads each key's payload into its target. Each result is a hit with the payload's length,
    /// or a miss with its reason (absent, buffer too small, header or checksum mismatch, I/O
    /// error); a miss never leaves wrong bytes presented as a hit.
    public func get(_ keys: [BlockKey], into targets: [FlashReadTarget]) async -> [FlashReadResult] {
        precondition(keys.count == targets.count, "get needs one target per key")
        var results = [FlashReadResult?](repeating: nil, count: keys.count)
        var reads: [(index: Int, location: FlashSlotLocation)] = []
        let queuedAtIssue = locked { state -> [Int64] in
            for (index, key) in keys.enumerated() {
                guard !state.closed, let location = state.map[key] else {
                    results[index] = .miss(state.closed ? .ioError("the flash store is closed") : .absent)
                    continue
                }
                guard targets[index].bytes.count >= location.length else {
                    results[index] = .miss(.bufferTooSmall(needed: location.length, given: targets[index].bytes.count))
                    continue
                }
                reads.append((index, location))
            }
            if state.swarm != nil { chooseCopies(&reads, keys: keys, in: &state) }
            for read in reads { state.allocators[read.location.path].pin(segment: read.location.segment) }
            return state.queuedBytes
        }
        let outcomes = ReadResultBox(count: reads.count)
        let jobs = reads.enumerated().map { n, read in
            TrackedJob(
                readJob(key: keys[read.index], location: read.location, target: targets[read.index], results: outcomes, index: n),
                path: read.location.path, bytes: read.location.footprint)
        }
        _ = await runTracked(jobs)
        let read = outcomes.values
        locked { state in
            for (n, entry) in reads.enumerated() {
                state.allocators[entry.location.path].unpin(segment: entry.location.segment)
                state.reads += 1
                state.bytesRead += Int64(entry.location.footprint)
                state.pathBytesRead[entry.location.path] += Int64(entry.location.footprint)
                if !read[n].isHit { state.failedReads += 1 }
                results[entry.index] = read[n]
            }
        }
        let hits = reads.indices.filter { read[$0].isHit }
        if !hits.isEmpty, locked({ $0.swarm != nil }) {
            copyAfterRead(keys: hits.map { keys[reads[$0].index] }, sources: hits.map { targets[reads[$0].index] }, queuedAtIssue: queuedAtIssue)
        }
        return results.map { $0! }
    }

    /// Unmaps the keys; their slots are dead and their segments are reused once wholly dead.
    public func delete(_ keys: [BlockKey]) {
        locked { state in
            for key in keys {
                if let old = state.map.remove(key) {
                    state.allocators[old.path].release(segment: old.segment, footprint: old.footprint)
                }
                dropCopies(of: key, in: &state)
            }
        }
    }

    /// Bytes written to the regions in the current budget day, summed over paths (the wear
    /// ledgers' count, headers and padding included): the one daily counter that write budgets
    /// are kept against.
    public var bytesWrittenToday: Int64 {
        let now = Date().timeIntervalSince1970
        return locked { state in
            state.superblocks.reduce(0) { $0 + (now - $1.wear.dayStartedAt < 86_400 ? $1.wear.bytesWrittenToday : 0) }
        }
    }

    /// Bytes of all regions together.
    public var totalCapacity: Int64 { geometry.capacity * Int64(regions.count) }

    /// Every content-addressed (prefix) key mapped now, e.g. those recovered at start.
    public var contentKeys: [BlockKey] {
        locked { state in state.map.entries.compactMap { $0.key.kind == .content ? $0.key : nil } }
    }

    /// Whether `key` is mapped (a get may still miss if its slot proves corrupt).
    public func contains(_ key: BlockKey) -> Bool {
        locked { $0.map[key] != nil }
    }

    // MARK: Caller-written payloads (cuFile)

    /// Reserves contiguous slots for blocks whose payloads the caller writes itself, and returns
    /// where each must go. Nothing is mapped until `commit`.
    public func reserve(_ blocks: [(key: BlockKey, length: Int)]) async throws -> FlashReservation {
        try validate(keys: blocks.map(\.key), lengths: blocks.map(\.length))
        let slots = try await planWithCompaction(keys: blocks.map(\.key), lengths: blocks.map(\.length))
        return locked { state in
            let id = state.nextReservation
            state.nextReservation += 1
            state.reservations[id] = slots
            return FlashReservation(
                id: id,
                slots: slots.map {
                    FlashReservedSlot(
                        key: $0.key, fileDescriptor: regions[$0.path].fd,
                        payloadOffset: $0.placement.offset + Int64(FlashLayout.slotHeaderSize), length: $0.length,
                        regionFile: regions[$0.path].regionFile)
                })
        }
    }

    /// Writes the headers of a reservation whose payloads the caller has written, with their
    /// CRC32C values (`CRC32C.checksum(of:)`, in reservation order), then maps the blocks.
    public func commit(_ reservation: FlashReservation, checksums: [UInt32]) async throws {
        let slots: [PlannedSlot] = try locked { state in
            guard let slots = state.reservations.removeValue(forKey: reservation.id) else {
                throw FlashStoreError.badReservation("reservation \(reservation.id) was already committed or aborted")
            }
            guard checksums.count == slots.count else {
                state.reservations[reservation.id] = slots
                throw FlashStoreError.badReservation("\(checksums.count) checksums for \(slots.count) reserved slots")
            }
            // The caller's payload writes, then the store's header writes.
            for slot in slots {
                record(
                    write: FlashLayout.padded(slot.length), at: slot.placement.offset + Int64(FlashLayout.slotHeaderSize), path: slot.path, in: &state
                )
            }
            for slot in slots {
                record(write: FlashLayout.slotHeaderSize, at: slot.placement.offset, path: slot.path, in: &state)
            }
            return slots
        }
        let box = ChecksumBox(count: slots.count)
        let jobs = slots.enumerated().map { index, slot in
            TrackedJob(
                writeJob(slot, payload: nil, knownChecksum: checksums[index], checksums: box, index: index), path: slot.path,
                bytes: slot.footprint)
        }
        let codes = await runTracked(jobs)
        try publish(slots, codes: codes, checksums: checksums)
        persistSuperblocks(force: false)
    }

    /// Gives back a reservation's slots without mapping anything.
    public func abort(_ reservation: FlashReservation) {
        locked { state in
            guard let slots = state.reservations.removeValue(forKey: reservation.id) else { return }
            for slot in slots { state.allocators[slot.path].release(segment: slot.placement.segment, footprint: slot.footprint) }
        }
    }

    /// Where `key`'s payload lies, for a caller that reads it itself and checks it with
    /// `CRC32C`; nil when the key is not mapped.
    public func locate(_ key: BlockKey) -> FlashSlotLocator? {
        locked { state in
            state.map[key].map {
                FlashSlotLocator(
                    key: key, fileDescriptor: regions[$0.path].fd, payloadOffset: $0.payloadOffset, length: $0.length,
                    checksum: $0.checksum, generation: $0.generation, regionFile: regions[$0.path].regionFile)
            }
        }
    }

    // MARK: Planning and publishing

    private func validate(keys: [BlockKey], lengths: [Int]) throws {
        var seen = Set<BlockKey>()
        for (key, length) in zip(keys, lengths) {
            guard seen.insert(key).inserted else { throw FlashStoreError.duplicateKey(key) }
            guard FlashLayout.slotFootprint(payloadLength: length) <= geometry.segmentSize else {
                throw FlashStoreError.blockTooLarge(key: key, length: length, segmentSize: geometry.segmentSize)
            }
        }
    }

    /// Plans slots; when no path has room, drops the extra copies, or compacts once, and tries again.
    private func planWithCompaction(keys: [BlockKey], lengths: [Int]) async throws -> [PlannedSlot] {
        do {
            return try locked { try plan(keys: keys, lengths: lengths, in: &$0) }
        } catch FlashStoreError.regionFull {
            // Extra copies yield to new blocks first, then compaction frees segments.
            if let planned = try? locked({ state -> [PlannedSlot]? in
                guard !state.copies.isEmpty else { return nil }
                for key in Array(state.copies.keys) { dropCopies(of: key, in: &state) }
                return try plan(keys: keys, lengths: lengths, in: &state)
            }) {
                return planned
            }
            guard await compact() > 0 else { throw regionFullError(lengths) }
            return try locked { try plan(keys: keys, lengths: lengths, in: &$0) }
        }
    }

    private func regionFullError(_ lengths: [Int]) -> FlashStoreError {
        .regionFull(paths: regions.map(\.regionFile), needed: Int64(lengths.reduce(0) { $0 + FlashLayout.slotFootprint(payloadLength: $1) }))
    }

    /// Chooses a path for each block (the placement policy, then the other paths when that one
    /// is full) and allocates the blocks of each path contiguously.
    private func plan(keys: [BlockKey], lengths: [Int], in state: inout State) throws -> [PlannedSlot] {
        guard !state.closed else { throw FlashStoreError.closed }
        let preferred =
            state.swarm != nil
            ? swarmPaths(keys: keys, lengths: lengths, in: state) : placement.paths(forBatchOf: keys.count, rotation: state.rotation)
        state.rotation &+= keys.count
        var groups: [(path: Int, indices: [Int])] = []
        for (index, path) in preferred.enumerated() {
            if let g = groups.firstIndex(where: { $0.path == path }) { groups[g].indices.append(index) } else { groups.append((path, [index])) }
        }
        var slots = [PlannedSlot?](repeating: nil, count: keys.count)
        var allocated: [PlannedSlot] = []
        for group in groups {
            let footprints = group.indices.map { FlashLayout.slotFootprint(payloadLength: lengths[$0]) }
            var placed = false
            for path in placement.fallbackOrder(from: group.path) {
                guard let placements = state.allocators[path].allocate(footprints: footprints) else { continue }
                for (index, where_) in zip(group.indices, placements) {
                    let slot = PlannedSlot(key: keys[index], path: path, placement: where_, length: lengths[index], generation: state.nextGeneration)
                    state.nextGeneration += 1
                    slots[index] = slot
                    allocated.append(slot)
                }
                placed = true
                break
            }
            if !placed {
                for slot in allocated { state.allocators[slot.path].release(segment: slot.placement.segment, footprint: slot.footprint) }
                throw regionFullError(lengths)
            }
        }
        return slots.map { $0! }
    }

    /// Counts one write in the write pattern and the path's wear ledger.
    func record(write length: Int, at offset: Int64, path: Int, in state: inout State) {
        state.pattern.recordWrite(path: path, offset: offset, length: length)
        state.superblocks[path].wear.record(bytes: Int64(length), at: Date().timeIntervalSince1970)
    }

    /// Maps the written slots, or, if any write failed, releases them all and throws.
    private func publish(_ slots: [PlannedSlot], codes: [Int32], checksums: [UInt32]) throws {
        if let failed = codes.firstIndex(where: { $0 != 0 }) {
            locked { state in
                for slot in slots { state.allocators[slot.path].release(segment: slot.placement.segment, footprint: slot.footprint) }
            }
            let slot = slots[failed]
            throw FlashStoreError.ioFailed(
                path: regions[slot.path].regionFile, operation: "write", offset: slot.placement.offset,
                errno: codes[failed], message: DirectIO.message(codes[failed]))
        }
        locked { state in
            for (slot, checksum) in zip(slots, checksums) {
                if let dead = state.map.insert(slot.key, at: slot.location(checksum: checksum)) {
                    state.allocators[dead.path].release(segment: dead.segment, footprint: dead.footprint)
                }
                dropCopies(of: slot.key, in: &state)
                state.pattern.recordPayload(slot.length)
            }
        }
    }

    // MARK: I/O jobs

    /// A job that writes one slot: header page and payload in one pwritev. The payload's CRC32C
    /// is computed on the I/O thread (so checksums of a batch run in parallel) unless known.
    func writeJob(
        _ slot: PlannedSlot, payload: UnsafeRawBufferPointer?, knownChecksum: UInt32?,
        checksums: ChecksumBox, index: Int
    ) -> IOThreadPool.Job {
        let fd = regions[slot.path].fd
        let file = regions[slot.path].regionFile
        let injector = faultInjector
        let payload = SendableBytes(payload)
        return {
            let bytes = payload.bytes
            let checksum = knownChecksum ?? bytes.map { CRC32C.checksum(of: $0) } ?? 0
            checksums.set(index, checksum)
            let header = AlignedBuffer(count: FlashLayout.slotHeaderSize)
            SlotHeader(
                key: slot.key, generation: slot.generation, segmentSequence: slot.placement.sequence,
                slotOffset: slot.placement.offset, payloadLength: slot.length, payloadChecksum: checksum
            ).encode(into: header.bytes)
            var vectors = [DirectIO.vector(header.bytes.baseAddress!, header.bytes.count)]
            var staging: AlignedBuffer?
            if let bytes, bytes.count > 0 {
                if AlignedBuffer.isDirectIOCompatible(bytes.baseAddress, count: bytes.count) {
                    vectors.append(DirectIO.vector(bytes.baseAddress!, bytes.count))
                } else {
                    let buffer = AlignedBuffer(count: bytes.count, zeroed: false)
                    buffer.bytes.copyMemory(from: bytes)
                    let tail = UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[bytes.count...])
                    tail.initializeMemory(as: UInt8.self, repeating: 0)
                    vectors.append(DirectIO.vector(buffer.bytes.baseAddress!, buffer.bytes.count))
                    staging = buffer
                }
            }
            let length = vectors.reduce(0) { $0 + $1.iov_len }
            if let fault = injector?.faultBeforeWrite(path: file, offset: slot.placement.offset, length: length) { return fault }
            let rc = DirectIO.writeFully(fd: fd, vectors: vectors, offset: slot.placement.offset)
            withExtendedLifetime((header, staging)) {}
            return rc
        }
    }

    /// A job that reads one slot (header page and payload in one preadv) and verifies the header
    /// and the payload's CRC32C before reporting a hit.
    func readJob(
        key: BlockKey, location: FlashSlotLocation, target: FlashReadTarget,
        results: ReadResultBox, index: Int
    ) -> IOThreadPool.Job {
        let fd = regions[location.path].fd
        let file = regions[location.path].regionFile
        let injector = faultInjector
        return {
            let padded = FlashLayout.padded(location.length)
            let header = AlignedBuffer(count: FlashLayout.slotHeaderSize)
            let direct = target.bytes.count >= padded && AlignedBuffer.isDirectIOCompatible(target.bytes.baseAddress, count: padded)
            let staging = direct || padded == 0 ? nil : AlignedBuffer(count: padded, zeroed: false)
            let destination = staging?.bytes ?? target.bytes
            var vectors = [DirectIO.vector(header.bytes.baseAddress!, header.bytes.count)]
            if padded > 0 { vectors.append(DirectIO.vector(destination.baseAddress!, padded)) }
            let rc =
                injector?.faultBeforeRead(path: file, offset: location.offset, length: padded + header.bytes.count)
                ?? DirectIO.readFully(fd: fd, vectors: vectors, offset: location.offset)
            guard rc == 0 else {
                results.set(index, .miss(.ioError("read of \(file) at byte \(location.offset): \(DirectIO.message(rc))")))
                return rc
            }
            if location.length > 0, injector?.corruptRead(path: file, offset: location.offset) == true {
                destination[0] ^= 0xFF
            }
            let payload = UnsafeRawBufferPointer(rebasing: destination[0..<location.length])
            results.set(index, Self.verify(header: header, payload: payload, key: key, location: location))
            if results.isHit(index), let staging {
                target.bytes.copyMemory(from: UnsafeRawBufferPointer(rebasing: staging.bytes[0..<location.length]))
            }
            return 0
        }
    }

    private static func verify(
        header page: AlignedBuffer, payload: UnsafeRawBufferPointer, key: BlockKey,
        location: FlashSlotLocation
    ) -> FlashReadResult {
        let header: SlotHeader
        do { header = try SlotHeader(decoding: UnsafeRawBufferPointer(page.bytes)) } catch {
            return .miss(.headerMismatch(error.description))
        }
        guard header.key == key, header.generation == location.generation, header.payloadLength == location.length,
            header.slotOffset == location.offset, header.payloadChecksum == location.checksum
        else {
            return .miss(
                .headerMismatch(
                    "slot holds \(header.key) generation \(header.generation) of \(header.payloadLength) bytes; expected \(key) generation \(location.generation) of \(location.length) bytes"
                ))
        }
        let found = CRC32C.checksum(of: payload)
        guard found == location.checksum else { return .miss(.checksumMismatch(expected: location.checksum, found: found)) }
        return .hit(length: location.length)
    }

    // MARK: Compaction

    /// Compacts where free segments ran short, after a put.
    private func compactIfNeeded() async {
        let short = locked { state in
            state.allocators.contains { $0.freeSegmentCount < configuration.minimumFreeSegments }
        }
        if short { await compact() }
    }

    /// On every path with fewer free segments than `minimumFreeSegments`, moves the live slots of
    /// the closed segment with the lowest live fraction (below `compactionThreshold`) to the open
    /// segment, so that segment becomes free. Returns the number of slots moved.
    @discardableResult
    public func compact() async -> Int {
        let start = locked { state -> Bool in
            guard !state.compacting, !state.closed else { return false }
            state.compacting = true
            return true
        }
        guard start else { return 0 }
        var moved = 0
        for path in regions.indices { moved += await compact(path: path) }
        locked {
            $0.compacting = false
            $0.compactedSlots += Int64(moved)
        }
        return moved
    }

    private func compact(path: Int) async -> Int {
        let picked: (segment: Int, entries: [(key: BlockKey, location: FlashSlotLocation)])? = locked { state in
            guard
                let segment = state.allocators[path].compactionCandidate(
                    threshold: configuration.compactionThreshold, minimumFreeSegments: configuration.minimumFreeSegments)
            else { return nil }
            dropCopies(inPath: path, segment: segment, in: &state)
            state.allocators[path].pin(segment: segment)
            return (segment, state.map.entries(inPath: path, segment: segment))
        }
        guard let picked else { return 0 }
        defer { locked { $0.allocators[path].unpin(segment: picked.segment) } }
        let buffers = picked.entries.map { AlignedBuffer(count: max($0.location.length, 1), zeroed: false) }
        let outcomes = ReadResultBox(count: picked.entries.count)
        _ = await pool.run(
            picked.entries.enumerated().map { n, entry in
                readJob(key: entry.key, location: entry.location, target: FlashReadTarget(buffers[n].bytes), results: outcomes, index: n)
            })
        let read = outcomes.values
        let readable = picked.entries.indices.filter { read[$0].isHit }
        guard !readable.isEmpty else { return 0 }
        let moves: [PlannedSlot]? = locked { state in
            guard
                let placements = state.allocators[path].allocate(
                    footprints: readable.map { picked.entries[$0].location.footprint })
            else { return nil }
            let moves = zip(readable, placements).map { n, placement in
                PlannedSlot(
                    key: picked.entries[n].key, path: path, placement: placement,
                    length: picked.entries[n].location.length, generation: picked.entries[n].location.generation)
            }
            for move in moves { record(write: move.footprint, at: move.placement.offset, path: path, in: &state) }
            return moves
        }
        guard let moves else { return 0 }
        let box = ChecksumBox(count: moves.count)
        let codes = await pool.run(
            moves.enumerated().map { i, move in
                let entry = picked.entries[readable[i]]
                return writeJob(
                    move, payload: UnsafeRawBufferPointer(rebasing: buffers[readable[i]].bytes[0..<entry.location.length]),
                    knownChecksum: entry.location.checksum, checksums: box, index: i)
            })
        return locked { state in
            var moved = 0
            for (i, move) in moves.enumerated() {
                let old = picked.entries[readable[i]].location
                let new = move.location(checksum: old.checksum)
                if codes[i] == 0, state.map.replace(move.key, expecting: old, with: new) {
                    state.allocators[path].release(segment: old.segment, footprint: old.footprint)
                    moved += 1
                } else {
                    state.allocators[path].release(segment: move.placement.segment, footprint: move.footprint)
                }
            }
            withExtendedLifetime(buffers) {}
            return moved
        }
    }

    // MARK: Superblocks, stats, close

    /// Writes each region's superblock (wear ledger) when a second has passed since the last
    /// write, or at once with `force`. A failed superblock write loses only wear counts since the
    /// last one; the data path reports its own errors.
    private func persistSuperblocks(force: Bool) {
        superblockLock.lock()
        defer { superblockLock.unlock() }
        let now = Date().timeIntervalSince1970
        let copies: [RegionSuperblock]? = locked { state in
            guard force || now - state.lastPersist >= 1 else { return nil }
            state.lastPersist = now
            for path in state.superblocks.indices {
                state.superblocks[path].updateCount += 1
                record(write: FlashLayout.pageSize, at: state.superblocks[path].nextCopyOffset, path: path, in: &state)
            }
            return state.superblocks
        }
        guard let copies else { return }
        for (region, superblock) in zip(regions, copies) { _ = region.writeSuperblock(superblock) }
    }

    /// The write pattern, reads, and per-path wear and lifetime.
    public var stats: FlashStoreStats {
        let now = Date().timeIntervalSince1970
        return locked { state in
            var liveSlots = [Int](repeating: 0, count: regions.count)
            for (_, location) in state.map.entries { liveSlots[location.path] += 1 }
            let tbw = configuration.enduranceTBW?.bytes
            let budget = configuration.dailyWriteBudget?.bytes
            let paths = regions.indices.map { path in
                let allocator = state.allocators[path]
                let wear = state.superblocks[path].wear
                return FlashPathStats(
                    path: regions[path].path, regionFile: regions[path].regionFile, capacity: geometry.capacity,
                    segmentSize: geometry.segmentSize, segments: geometry.segmentCount, freeSegments: allocator.freeSegmentCount,
                    closedSegments: allocator.segments.filter { $0.state == .closed }.count, liveSlots: liveSlots[path],
                    liveBytes: Int64(allocator.liveBytes), bytesWrittenSinceCreation: wear.bytesWritten, createdAt: wear.createdAt,
                    bytesPerDay: wear.bytesPerDay(at: now), enduranceTBW: tbw, lifetimeYears: wear.lifetimeYears(endurance: tbw, at: now),
                    dailyWriteBudget: budget, bytesWrittenToday: wear.bytesWrittenToday, overDailyBudget: wear.isOverBudget(budget, at: now))
            }
            return FlashStoreStats(
                writePattern: state.pattern, bytesRead: state.bytesRead, reads: state.reads,
                corruptOrFailedReads: state.failedReads, compactedSlots: state.compactedSlots,
                liveSlots: state.map.count, paths: paths, recovery: state.recovery)
        }
    }

    /// Per path, each segment's accounting (for `hifc inspect`).
    public var segments: [[FlashSegmentAllocator.Segment]] {
        locked { $0.allocators.map(\.segments) }
    }

    /// Persists the wear ledgers and closes the regions; later puts throw `closed`, later gets miss.
    /// Call it after the last put and get have returned.
    public func close() {
        let wasOpen = locked { state -> Bool in
            defer { state.closed = true }
            return !state.closed
        }
        guard wasOpen else { return }
        copyWrites.wait()
        persistSuperblocks(force: true)
        pool.shutdown()
        regions.forEach { $0.close() }
    }
}

/// The caller's payload pointer, carried into an I/O job (the caller keeps it valid until the
/// put returns).
private struct SendableBytes: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer?
    init(_ bytes: UnsafeRawBufferPointer?) { self.bytes = bytes }
}

/// CRC32C values computed by I/O threads, one per slot of a batch.
final class ChecksumBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [UInt32]
    init(count: Int) { storage = Array(repeating: 0, count: count) }
    func set(_ index: Int, _ value: UInt32) {
        lock.lock()
        storage[index] = value
        lock.unlock()
    }
    var values: [UInt32] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}

/// Read outcomes decided by I/O threads, one per read of a batch.
final class ReadResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [FlashReadResult]
    init(count: Int) { storage = Array(repeating: .miss(.absent), count: count) }
    func set(_ index: Int, _ value: FlashReadResult) {
        lock.lock()
        storage[index] = value
        lock.unlock()
    }
    func isHit(_ index: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return storage[index].isHit
    }
    var values: [FlashReadResult] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
