import Foundation

/// Host f32 memory behind a CPU `DeviceTensor`: either owned (allocated here, freed on deinit) or
/// borrowed from a memory-mapped file whose owner it keeps alive.
final class CPUStorage: TensorStorage, @unchecked Sendable {
    /// First element.
    let pointer: UnsafeMutablePointer<Float>
    /// Elements.
    let count: Int
    private let owned: Bool
    private let keepAlive: AnyObject?

    /// 64-byte aligned memory of `count` floats, zero-filled unless `zeroed` is false (for an op
    /// that writes every element).
    init(count: Int, zeroed: Bool = true) throws(BackendError) {
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * 4
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            throw .outOfMemory(what: "a tensor of \(count) floats", bytes: bytes)
        }
        if zeroed { memset(raw, 0, bytes) }
        pointer = raw.bindMemory(to: Float.self, capacity: count)
        self.count = count
        owned = true
        keepAlive = nil
    }

    /// Floats that live in someone else's memory (an f32 tensor of a mapped safetensors file).
    init(borrowing pointer: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject?) {
        self.pointer = pointer
        self.count = count
        owned = false
        keepAlive = owner
    }

    deinit { if owned { free(pointer) } }
}

extension DeviceTensor {
    /// The f32 memory of a tensor the CPU backend made.
    func cpu(_ op: String) throws(BackendError) -> UnsafeMutablePointer<Float> {
        guard let storage = storage as? CPUStorage else { throw .foreignObject("a tensor passed to \(op)") }
        return storage.pointer
    }
}
