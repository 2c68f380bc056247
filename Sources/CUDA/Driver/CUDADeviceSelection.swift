/// Parses `--device` values: "cpu", "cuda" (GPU 0) or "cuda:N".
public enum CUDADeviceSelection {
    /// The GPU ordinal a "cuda" or "cuda:N" value names.
    public static func ordinal(_ value: String) throws -> Int {
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.first == "cuda", parts.count <= 2 else {
            throw CUDAError.invalidArgument("device \"\(value)\": expected cuda or cuda:N")
        }
        guard parts.count == 2 else { return 0 }
        guard let n = Int(parts[1]), n >= 0 else { throw CUDAError.invalidArgument("device \"\(value)\": N must be a GPU number") }
        return n
    }
}
