import Foundation
import HiFCCore

extension FlashStore {
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
        let namespaceTag = slot.key.kind == .content ? locked { $0.contentNamespaceTag } : 0
        return {
            let bytes = payload.bytes
            let checksum = knownChecksum ?? bytes.map { CRC32C.checksum(of: $0) } ?? 0
            checksums.set(index, checksum)
            let header = AlignedBuffer(count: FlashLayout.slotHeaderSize)
            SlotHeader(
                key: slot.key, generation: slot.generation, segmentSequence: slot.placement.sequence,
                slotOffset: slot.placement.offset, payloadLength: slot.length, payloadChecksum: checksum,
                namespaceTag: namespaceTag
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
    /// and the payload's CRC32C before reporting a hit. `region` is another instance's region
    /// (shared directory); nil: this store's region `location.path`.
    func readJob(
        key: BlockKey, location: FlashSlotLocation, target: FlashReadTarget,
        results: ReadResultBox, index: Int, region: FlashRegionFile? = nil
    ) -> IOThreadPool.Job {
        let fd = (region ?? regions[location.path]).fd
        let file = (region ?? regions[location.path]).regionFile
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

    static func verify(
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
}

/// The caller's payload pointer, carried into an I/O job (the caller keeps it valid until the
/// put returns).
struct SendableBytes: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer?
    init(_ bytes: UnsafeRawBufferPointer?) { self.bytes = bytes }
}

/// CRC32C values computed by I/O threads, one per slot of a batch.
final class ChecksumBox: @unchecked Sendable {
    let lock = NSLock()
    var storage: [UInt32]
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
    let lock = NSLock()
    var storage: [FlashReadResult]
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
