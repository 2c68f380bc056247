import Foundation
import HiFCCore

extension FlashStore {
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
    /// `CRC32C`; nil when the key is not mapped. In a shared directory, a key this store does not
    /// hold may lie in another instance's region (its descriptor is read-only).
    public func locate(_ key: BlockKey) -> FlashSlotLocator? {
        let own = locked { state in
            state.map[key].map {
                FlashSlotLocator(
                    key: key, fileDescriptor: regions[$0.path].fd, payloadOffset: $0.payloadOffset, length: $0.length,
                    checksum: $0.checksum, generation: $0.generation, regionFile: regions[$0.path].regionFile)
            }
        }
        if let own { return own }
        return shared.locate(key).map { location, region in
            FlashSlotLocator(
                key: key, fileDescriptor: region.fd, payloadOffset: location.payloadOffset, length: location.length,
                checksum: location.checksum, generation: location.generation, regionFile: region.regionFile)
        }
    }
}
