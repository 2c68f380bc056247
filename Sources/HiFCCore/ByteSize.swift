import Foundation

/// A count of bytes, parsed from and printed as the human forms that flags and config files use
/// ("4GiB", "200GiB", "6000TB", "8MiB", "1048576").
///
/// Binary suffixes (KiB, MiB, GiB, TiB) are powers of 1024; decimal suffixes (KB, MB, GB, TB, PB)
/// are powers of 1000, because SSD endurance (TBW) is quoted in decimal terabytes.
public struct ByteSize: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The number of bytes.
    public var bytes: Int64

    /// A size of `bytes` bytes.
    public init(_ bytes: Int64) { self.bytes = bytes }

    /// Why a size string could not be read.
    public enum ParseError: Error, CustomStringConvertible, Equatable {
        case empty
        case notANumber(String)
        case unknownUnit(String, unit: String)
        case negative(String)
        case tooLarge(String)

        public var description: String {
            switch self {
            case .empty: return "a size is empty; write for example 4GiB, 512MiB or 6000TB"
            case .notANumber(let s): return "'\(s)' is not a size; write for example 4GiB, 512MiB or 6000TB"
            case .unknownUnit(let s, let unit):
                return "'\(s)' has the unknown unit '\(unit)'; use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB or PB"
            case .negative(let s): return "'\(s)' is negative; a size must be zero or more"
            case .tooLarge(let s): return "'\(s)' is too large to count in bytes"
            }
        }
    }

    private static let units: [String: Double] = [
        "": 1, "b": 1,
        "k": 0x1p10, "kib": 0x1p10, "m": 0x1p20, "mib": 0x1p20, "g": 0x1p30, "gib": 0x1p30,
        "t": 0x1p40, "tib": 0x1p40,
        "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15,
    ]

    /// Parses "4GiB", "1.5 TB", "8mib" or a plain byte count.
    public init(parsing text: String) throws(ParseError) {
        let s = text.trimmingCharacters(in: .whitespaces)
        guard !s.isEmpty else { throw .empty }
        var numberEnd = s.startIndex
        while numberEnd < s.endIndex, s[numberEnd].isNumber || s[numberEnd] == "." || s[numberEnd] == "-" {
            numberEnd = s.index(after: numberEnd)
        }
        guard let value = Double(s[..<numberEnd]) else { throw .notANumber(text) }
        guard value >= 0 else { throw .negative(text) }
        let unit = s[numberEnd...].trimmingCharacters(in: .whitespaces).lowercased()
        guard let scale = Self.units[unit] else { throw .unknownUnit(text, unit: unit) }
        let total = (value * scale).rounded()
        guard total < 9.2e18 else { throw .tooLarge(text) }
        self.bytes = Int64(total)
    }

    public static func < (a: ByteSize, b: ByteSize) -> Bool { a.bytes < b.bytes }

    /// The size in the largest binary unit that keeps at least one whole unit ("8 MiB", "1.5 GiB").
    public var description: String {
        let names = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var i = 0
        while value >= 1024, i < names.count - 1 {
            value /= 1024
            i += 1
        }
        if value == value.rounded() { return "\(Int64(value)) \(names[i])" }
        return "\((value * 100).rounded() / 100) \(names[i])"
    }

    public static func kib(_ n: Int64) -> ByteSize { ByteSize(n << 10) }
    public static func mib(_ n: Int64) -> ByteSize { ByteSize(n << 20) }
    public static func gib(_ n: Int64) -> ByteSize { ByteSize(n << 30) }
}
