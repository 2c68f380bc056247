/// Holds prefix saves to flash back for a while after one fails.
///
/// A failed save leaves its blocks cached on the device and unsaved, so the very next plan
/// offers them again: a store that refuses every write (full, out of space, a block that fits no
/// segment) would otherwise get a save of the same blocks every step, each copied off the device
/// first, for nothing. After a failure saves pause for `pause` plans, doubling up to `longest`
/// while they keep failing; one that succeeds ends the pause.
public struct PrefixSaveBackoff: Sendable, Equatable {
    /// Plans to skip after the first failure.
    public static let shortest = 16
    /// The longest pause, in plans (seconds to minutes of steps).
    public static let longest = 4096

    /// Plans left before saves may be planned again.
    public private(set) var plansLeft = 0
    /// The pause after the next failure.
    public private(set) var pause = PrefixSaveBackoff.shortest

    public init() {}

    /// Called once per plan: whether this plan may save prefix blocks.
    public mutating func allowsSave() -> Bool {
        guard plansLeft > 0 else { return true }
        plansLeft -= 1
        return false
    }

    /// A save ended: a failure starts a pause (longer each time), a success resets it.
    public mutating func record(succeeded: Bool) {
        if succeeded {
            pause = Self.shortest
        } else {
            plansLeft = pause
            pause = min(2 * pause, Self.longest)
        }
    }
}
