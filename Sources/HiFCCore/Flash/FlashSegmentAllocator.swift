/// The log-structured space decisions of one region: which segment is open for appends, where the
/// next slots go, when a segment becomes free again and which one to compact.
///
/// Slots are appended at the open segment's frontier, so one batch lands contiguously. A segment
/// is reused only when every slot in it is dead and no read holds it pinned; a closed segment
/// whose live fraction is below the compaction threshold is offered for compaction when free
/// segments run short. No I/O happens here.
public struct FlashSegmentAllocator: Sendable {
    /// The life of a segment.
    public enum State: String, Sendable {
        /// Holds no live slot; may be opened.
        case free
        /// Receiving appends.
        case open
        /// Full (or recovered); its slots die one by one until it is free again.
        case closed
    }

    /// The accounting of one segment.
    public struct Segment: Hashable, Sendable {
        /// Where the segment is in its life.
        public var state: State = .free
        /// Bytes appended since the segment was opened.
        public var frontier: Int = 0
        /// Slots allocated and not yet released.
        public var liveSlots: Int = 0
        /// Footprint bytes of those slots.
        public var liveBytes: Int = 0
        /// Reads in flight against the segment; it is not reused while any remain.
        public var pins: Int = 0
        /// The number the segment got when it was last opened; slot headers carry it so that a
        /// recovery scan tells this incarnation's slots from stale ones of an earlier one.
        public var sequence: UInt64 = 0
    }

    /// Where one allocated slot goes.
    public struct Placement: Hashable, Sendable {
        /// The segment.
        public var segment: Int
        /// Byte offset of the slot in the region.
        public var offset: Int64
        /// The segment's sequence number, to be written in the slot header.
        public var sequence: UInt64
    }

    /// The geometry of the region.
    public let geometry: FlashRegionGeometry
    /// Every segment's accounting, by index.
    public private(set) var segments: [Segment]
    /// The segment receiving appends, if any.
    public private(set) var openSegment: Int?
    /// The sequence number the next opened segment gets.
    public private(set) var nextSequence: UInt64 = 1

    /// An allocator over an empty region whose first opened segment gets `firstSequence` (a new
    /// region starts high, from the clock, so that no stale header left on the device by an
    /// earlier life can carry a sequence number this one will use).
    public init(geometry: FlashRegionGeometry, firstSequence: UInt64 = 1) {
        self.geometry = geometry
        self.nextSequence = max(1, firstSequence)
        self.segments = Array(repeating: Segment(), count: geometry.segmentCount)
    }

    /// Segments that hold no live slot and are not pinned.
    public var freeSegmentCount: Int {
        segments.lazy.filter { $0.state == .free && $0.pins == 0 }.count
    }

    /// Footprint bytes of all live slots.
    public var liveBytes: Int { segments.reduce(0) { $0 + $1.liveBytes } }

    /// Allocates slots of the given footprints, in order and contiguously, starting at the open
    /// segment's frontier and opening free segments as each fills. Returns nil, changing nothing,
    /// when the region cannot hold them all or a footprint exceeds a segment.
    ///
    /// When the batch does not fit that way and the open segment holds nothing live, the open
    /// segment is recycled and the batch starts afresh. Otherwise a wholly dead open segment would
    /// never be reused: it closes only when a slot does not fit its rest, and by then the batch's
    /// first slots sit in it, so a region with no other free segment (one segment, or the others
    /// all holding live slots) would stay full with nothing live in it.
    public mutating func allocate(footprints: [Int]) -> [Placement]? {
        if let placements = appending(footprints) { return placements }
        guard let open = openSegment, segments[open].liveSlots == 0, segments[open].pins == 0, segments[open].frontier > 0 else {
            return nil
        }
        var trial = self
        trial.closeOpenSegment()
        guard let placements = trial.appending(footprints) else { return nil }
        self = trial
        return placements
    }

    /// `allocate` without recycling a dead open segment first.
    private mutating func appending(_ footprints: [Int]) -> [Placement]? {
        var trial = self
        var placements: [Placement] = []
        placements.reserveCapacity(footprints.count)
        for footprint in footprints {
            guard footprint > 0, footprint <= geometry.segmentSize, footprint % FlashLayout.pageSize == 0 else { return nil }
            if let open = trial.openSegment, trial.segments[open].frontier + footprint <= geometry.segmentSize {
                placements.append(trial.append(footprint, to: open))
                continue
            }
            trial.closeOpenSegment()
            guard let fresh = trial.segments.indices.first(where: { trial.segments[$0].state == .free && trial.segments[$0].pins == 0 }) else {
                return nil
            }
            trial.open(fresh)
            placements.append(trial.append(footprint, to: fresh))
        }
        self = trial
        return placements
    }

    private mutating func append(_ footprint: Int, to index: Int) -> Placement {
        let offset = geometry.segmentStart(index) + Int64(segments[index].frontier)
        segments[index].frontier += footprint
        segments[index].liveSlots += 1
        segments[index].liveBytes += footprint
        return Placement(segment: index, offset: offset, sequence: segments[index].sequence)
    }

    private mutating func open(_ index: Int) {
        segments[index] = Segment(state: .open, sequence: nextSequence)
        nextSequence += 1
        openSegment = index
    }

    /// Closes the open segment, so the next allocation starts a fresh one (recovery and
    /// compaction use this; allocation closes a segment itself when it fills).
    public mutating func closeOpenSegment() {
        guard let open = openSegment else { return }
        segments[open].state = .closed
        openSegment = nil
        freeIfDead(open)
    }

    /// Marks one slot of `footprint` bytes in `segment` dead; a closed segment with no live slot
    /// and no pin becomes free.
    public mutating func release(segment: Int, footprint: Int) {
        segments[segment].liveSlots -= 1
        segments[segment].liveBytes -= footprint
        precondition(segments[segment].liveSlots >= 0 && segments[segment].liveBytes >= 0, "flash slot released twice")
        freeIfDead(segment)
    }

    /// Holds `segment` against reuse while a read of it is in flight.
    public mutating func pin(segment: Int) { segments[segment].pins += 1 }

    /// Ends one read's hold on `segment`.
    public mutating func unpin(segment: Int) {
        segments[segment].pins -= 1
        freeIfDead(segment)
    }

    private mutating func freeIfDead(_ index: Int) {
        let s = segments[index]
        if s.state == .closed, s.liveSlots == 0, s.pins == 0 {
            segments[index] = Segment(state: .free, sequence: s.sequence)
        }
    }

    /// Records a segment found by the recovery scan: its sequence number, the end of its last
    /// valid slot and the live slots in it. Recovered segments are closed; appends resume in a
    /// fresh segment.
    public mutating func restore(segment: Int, sequence: UInt64, frontier: Int, liveSlots: Int, liveBytes: Int) {
        segments[segment] = Segment(
            state: .closed, frontier: frontier, liveSlots: liveSlots,
            liveBytes: liveBytes, pins: 0, sequence: sequence)
        nextSequence = max(nextSequence, sequence + 1)
        freeIfDead(segment)
    }

    /// Fraction of a segment's bytes held by live slots.
    public func liveFraction(of segment: Int) -> Double {
        Double(segments[segment].liveBytes) / Double(geometry.segmentSize)
    }

    /// The segment worth compacting now, if any: only when fewer than `minimumFreeSegments`
    /// segments are free, the closed, unpinned segment with the lowest live fraction, provided
    /// that fraction is below `threshold` (so moving its live slots frees more than it costs).
    public func compactionCandidate(threshold: Double, minimumFreeSegments: Int) -> Int? {
        guard freeSegmentCount < minimumFreeSegments else { return nil }
        let candidates = segments.indices.filter {
            segments[$0].state == .closed && segments[$0].pins == 0 && liveFraction(of: $0) < threshold
        }
        return candidates.min { liveFraction(of: $0) < liveFraction(of: $1) }
    }
}
