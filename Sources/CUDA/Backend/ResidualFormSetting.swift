import Foundation

/// The two products that end a transformer block at decode: o ends the attention block, down
/// the MLP block.
enum BlockEnd: Sendable {
    case attention
    case mlp
}

/// Which decode products that end a block take the skinny GEMM's residual form
/// (`CUDABackend.linearAddAndNormalize`), as `HIFC_CUDA_RESIDUAL_FORM` sets it:
/// unset or `1`, the rule (`rule(rows:memoryBandwidth:)`); `0`, neither (the product and the add +
/// RMSNorm kernel); `attention`, `mlp` or `all`, that block end (or both) at every decode batch
/// and the other by the rule. The last three exist to time one end's form at the batches where
/// the rule gives both the norm kernel, in one run beside the default.
struct ResidualFormSetting: Equatable, Sendable {
    /// Whether any product takes the form (`0` turns it off).
    let enabled: Bool
    /// The ends that take the form at every decode batch, whatever the rule says.
    let always: Set<BlockEnd>

    /// `HIFC_CUDA_RESIDUAL_FORM` as `environment` sets it.
    static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ResidualFormSetting {
        switch environment["HIFC_CUDA_RESIDUAL_FORM"]?.lowercased() {
        case nil, "", "1": return ResidualFormSetting(enabled: true, always: [])
        case "0": return ResidualFormSetting(enabled: false, always: [])
        case "attention": return ResidualFormSetting(enabled: true, always: [.attention])
        case "mlp": return ResidualFormSetting(enabled: true, always: [.mlp])
        case "all": return ResidualFormSetting(enabled: true, always: [.attention, .mlp])
        case let other?: throw CUDAError.invalidArgument("HIFC_CUDA_RESIDUAL_FORM=\(other): expected 0, 1 (the default), attention, mlp or all")
        }
    }

    /// Whether the m-row product that ends `block` takes the form on a device of
    /// `memoryBandwidth` bytes per second (peak).
    func takes(_ block: BlockEnd, rows: Int, memoryBandwidth: Double) -> Bool {
        enabled && (always.contains(block) || Self.rule(rows: rows, memoryBandwidth: memoryBandwidth))
    }

    /// Whether an m-row decode product that ends a block takes the residual form by default. From
    /// batch 2 up it does on every GPU measured; at one row it did on the H100s (3.35e12 bytes a
    /// second: whole 8B steps 0.13-0.35% shorter at 2K of context, 0.8% at 8K) and not on the
    /// H200s (4.9e12: 0.9% longer at 2K, 0.5-0.6% at 8K; bench/results/cuda-graphs-h200.md,
    /// 2026-12-07). The line at 4e12 lies between the two devices measured; none between them was.
    static func rule(rows: Int, memoryBandwidth: Double) -> Bool {
        rows > 1 || memoryBandwidth < 4e12
    }
}
