/// How the blocks of a batch are spread over several flash paths.
public enum FlashPlacementPolicy: String, Sendable, CaseIterable {
    /// Every block of this engine goes to path `gpu % paths` (LMCache's GPU affinity), so each
    /// GPU of an N:N setup has its own SSD.
    case affinity
    /// The blocks of one batch are dealt round-robin over all paths, so a later read of that
    /// batch runs on every SSD at once.
    case stripe
    /// Swarm's co-activation placement (`SwarmPlacement`): blocks read together land on
    /// different paths, hot content blocks get extra copies within a budget, and each read goes
    /// to the copy on the least busy path. Its decisions need the store's history; without it
    /// (`FlashPlacement.paths`) a batch is striped.
    case swarm
}

/// The pure placement decision: which path each block of a batch prefers, and where to turn when
/// that path is full.
public struct FlashPlacement: Hashable, Sendable {
    /// The policy.
    public var policy: FlashPlacementPolicy
    /// Number of flash paths (at least one).
    public var pathCount: Int
    /// The GPU this engine runs on (affinity uses it).
    public var gpuIndex: Int

    /// A placement over `pathCount` paths.
    public init(policy: FlashPlacementPolicy, pathCount: Int, gpuIndex: Int = 0) {
        precondition(pathCount > 0, "placement needs at least one flash path")
        self.policy = policy
        self.pathCount = pathCount
        self.gpuIndex = gpuIndex
    }

    /// The affinity path of this engine's GPU.
    public var affinityPath: Int { ((gpuIndex % pathCount) + pathCount) % pathCount }

    /// The preferred path of each of `count` blocks of one batch. `rotation` is a counter the
    /// caller advances per batch, so that striped batches of one block still spread.
    public func paths(forBatchOf count: Int, rotation: Int) -> [Int] {
        switch policy {
        case .affinity: return Array(repeating: affinityPath, count: count)
        case .stripe, .swarm: return (0..<count).map { (rotation + $0) % pathCount }
        }
    }

    /// Paths to try, in order, for blocks that prefer `path`: it first, then the others.
    public func fallbackOrder(from path: Int) -> [Int] {
        (0..<pathCount).map { (path + $0) % pathCount }
    }
}
