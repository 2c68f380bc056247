import FlashStore
import Foundation
import Logging

/// The chaos suite's debug hook: `HIFC_CHAOS_FLASH_FAULTS="write-eio=0.05,write-enospc=0.05,read-eio=0.05,corrupt=0.02"`
/// makes that share of the flash store's writes fail with EIO or ENOSPC, of its reads fail with
/// EIO, and of its reads come back with a flipped byte. The engine must answer every request
/// correctly anyway (it recomputes what it cannot read back). Unset in production; a warning is
/// logged when it is set.
struct ChaosFlashFaults: IOFaultInjector {
    var writeEIO = 0.0
    var writeENOSPC = 0.0
    var readEIO = 0.0
    var corrupt = 0.0

    /// The name of the variable.
    static let variable = "HIFC_CHAOS_FLASH_FAULTS"

    /// The faults the environment asks for, or nil; throws naming a part it cannot read.
    static func fromEnvironment(logger: Logger) throws -> ChaosFlashFaults? {
        guard let text = ProcessInfo.processInfo.environment[variable], !text.isEmpty else { return nil }
        var faults = ChaosFlashFaults()
        for part in text.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, let share = Double(pair[1]), (0...1).contains(share) else {
                throw ChaosFlashFaultsError(part: String(part))
            }
            switch pair[0] {
            case "write-eio": faults.writeEIO = share
            case "write-enospc": faults.writeENOSPC = share
            case "read-eio": faults.readEIO = share
            case "corrupt": faults.corrupt = share
            default: throw ChaosFlashFaultsError(part: String(part))
            }
        }
        logger.warning("\(variable) is set: injecting flash faults (\(text)); for the chaos suite only")
        return faults
    }

    func faultBeforeWrite(path: String, offset: Int64, length: Int) -> Int32? {
        let roll = Double.random(in: 0..<1)
        if roll < writeEIO { return EIO }
        if roll < writeEIO + writeENOSPC { return ENOSPC }
        return nil
    }

    func faultBeforeRead(path: String, offset: Int64, length: Int) -> Int32? {
        Double.random(in: 0..<1) < readEIO ? EIO : nil
    }

    func corruptRead(path: String, offset: Int64) -> Bool {
        Double.random(in: 0..<1) < corrupt
    }
}

/// A part of `HIFC_CHAOS_FLASH_FAULTS` that is not `kind=share`.
struct ChaosFlashFaultsError: Error, CustomStringConvertible {
    let part: String
    var description: String {
        "\(ChaosFlashFaults.variable): cannot read '\(part)'; expected write-eio, write-enospc, read-eio or corrupt = a share between 0 and 1"
    }
}
