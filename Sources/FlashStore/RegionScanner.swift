import Foundation
import HiFCCore

/// The start-up scan that rebuilds a region's slot map from its slot headers (the flash tier's
/// journal is the log itself, as in LMCache's GDS backend scan of every path).
///
/// Per segment: the header at the segment start gives the segment's sequence number (no valid
/// header there: the segment is empty). The scan then walks slot by slot, each header giving the
/// next one's offset. Where it meets a torn header or one of another sequence (a write that
/// never finished, or a stale slot of the segment's earlier life), it reads the rest of the
/// segment in large chunks and looks at every page for a header of this sequence that names its
/// own offset, so a slot that completed after an unfinished one is still found. Payload checksums
/// are not read here; every get verifies them.
struct RegionScanner {
    /// What one segment holds.
    struct SegmentScan: Sendable {
        var sequence: UInt64 = 0
        var frontier = 0
        var slots: [SlotHeader] = []
        var resynchronized = false
    }

    static let resyncChunk = 8 << 20

    let region: FlashRegionFile
    let geometry: FlashRegionGeometry

    /// Scans every segment on `pool`; the segments' scans run in parallel. With `previous` (an
    /// earlier scan of the same region, which another instance keeps writing), a segment still in
    /// the same life is only read past its old frontier, slot by slot, and the others in full.
    func scan(on pool: IOThreadPool, previous: [SegmentScan]? = nil) throws(FlashStoreError) -> [SegmentScan] {
        let results = ScanResults(count: geometry.segmentCount)
        let region = self.region
        let geometry = self.geometry
        let codes = pool.runBlocking(
            (0..<geometry.segmentCount).map { index in
                { () -> Int32 in
                    let scanner = RegionScanner(region: region, geometry: geometry)
                    var scan = SegmentScan()
                    var rc: Int32
                    if let earlier = previous?[index], earlier.sequence != 0 {
                        rc = scanner.continueSegment(index, from: earlier, into: &scan)
                    } else {
                        rc = scanner.scanSegment(index, into: &scan)
                    }
                    results.set(index, scan)
                    return rc
                }
            })
        if let failed = codes.firstIndex(where: { $0 != 0 }) {
            throw .ioFailed(
                path: region.regionFile, operation: "recovery read", offset: geometry.segmentStart(failed),
                errno: codes[failed], message: DirectIO.message(codes[failed]))
        }
        return results.values
    }

    /// Goes on from `earlier`'s frontier when the segment's first header still has its sequence
    /// (no search past a torn write: a later rescan finds what is written by then); scans the
    /// segment afresh when the segment was reused.
    private func continueSegment(_ index: Int, from earlier: SegmentScan, into scan: inout SegmentScan) -> Int32 {
        let page = AlignedBuffer(count: FlashLayout.pageSize)
        let rc = DirectIO.readFully(
            fd: region.fd, vectors: [DirectIO.vector(page.bytes.baseAddress!, page.bytes.count)], offset: geometry.segmentStart(index))
        if rc != 0 { return rc }
        guard let first = try? SlotHeader(decoding: UnsafeRawBufferPointer(page.bytes)), first.segmentSequence == earlier.sequence
        else { return scanSegment(index, into: &scan) }
        scan = earlier
        let stop = walk(index, from: earlier.frontier, into: &scan)
        return stop < 0 ? Int32(-stop) : 0
    }

    private func scanSegment(_ index: Int, into scan: inout SegmentScan) -> Int32 {
        let offset = walk(index, from: 0, into: &scan)
        if offset < 0 { return Int32(-offset) }
        guard scan.sequence != 0, offset < geometry.segmentSize else { return 0 }
        return resynchronize(index, from: offset, into: &scan)
    }

    /// Follows slot headers from `from` while each is valid and of the segment's sequence;
    /// returns the offset where it stopped, or minus the errno of a failed read.
    private func walk(_ index: Int, from: Int, into scan: inout SegmentScan) -> Int {
        let start = geometry.segmentStart(index)
        let page = AlignedBuffer(count: FlashLayout.pageSize)
        var offset = from
        while offset + FlashLayout.slotHeaderSize <= geometry.segmentSize {
            let rc = DirectIO.readFully(
                fd: region.fd, vectors: [DirectIO.vector(page.bytes.baseAddress!, page.bytes.count)], offset: start + Int64(offset))
            if rc != 0 { return -Int(rc) }
            guard let header = try? SlotHeader(decoding: UnsafeRawBufferPointer(page.bytes)),
                header.slotOffset == start + Int64(offset),
                offset == 0 || header.segmentSequence == scan.sequence,
                fits(header, at: offset)
            else { break }
            if offset == 0 { scan.sequence = header.segmentSequence }
            scan.slots.append(header)
            offset += FlashLayout.slotFootprint(payloadLength: header.payloadLength)
            scan.frontier = offset
        }
        return offset
    }

    private func fits(_ header: SlotHeader, at offset: Int) -> Bool {
        header.payloadLength >= 0 && offset + FlashLayout.slotFootprint(payloadLength: header.payloadLength) <= geometry.segmentSize
    }

    /// Looks at every page from `offset` to the segment end for headers of this segment's life.
    private func resynchronize(_ index: Int, from offset: Int, into scan: inout SegmentScan) -> Int32 {
        let start = geometry.segmentStart(index)
        let chunk = AlignedBuffer(count: min(Self.resyncChunk, geometry.segmentSize))
        var chunkStart = offset
        var nextSlot = offset
        while max(chunkStart, nextSlot) < geometry.segmentSize {
            chunkStart = max(chunkStart, nextSlot)
            let length = min(chunk.bytes.count, geometry.segmentSize - chunkStart)
            let rc = DirectIO.readFully(
                fd: region.fd, vectors: [DirectIO.vector(chunk.bytes.baseAddress!, length)], offset: start + Int64(chunkStart))
            if rc != 0 { return rc }
            var pageOffset = max(nextSlot, chunkStart)
            while pageOffset < chunkStart + length {
                let local = pageOffset - chunkStart
                let bytes = UnsafeRawBufferPointer(rebasing: chunk.bytes[local..<(local + FlashLayout.pageSize)])
                if let header = try? SlotHeader(decoding: bytes), header.segmentSequence == scan.sequence,
                    header.slotOffset == start + Int64(pageOffset), fits(header, at: pageOffset)
                {
                    scan.slots.append(header)
                    scan.resynchronized = true
                    pageOffset += FlashLayout.slotFootprint(payloadLength: header.payloadLength)
                    scan.frontier = pageOffset
                    nextSlot = pageOffset
                } else {
                    pageOffset += FlashLayout.pageSize
                    nextSlot = pageOffset
                }
            }
            chunkStart += length
        }
        return 0
    }
}

/// Per-segment scan results, written by pool threads.
private final class ScanResults: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [RegionScanner.SegmentScan]
    init(count: Int) { storage = Array(repeating: .init(), count: count) }
    func set(_ index: Int, _ value: RegionScanner.SegmentScan) {
        lock.lock()
        storage[index] = value
        lock.unlock()
    }
    var values: [RegionScanner.SegmentScan] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
