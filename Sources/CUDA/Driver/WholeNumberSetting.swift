/// A whole-number setting `name` (an `HIFC_CUDA_*` variable) read from `environment`: nil when it
/// is not set; when it is not a whole number within `range`, an error naming the variable, its
/// value and what was `expected`.
func wholeNumberSetting(_ name: String, in environment: [String: String], range: ClosedRange<Int>, expected: String) throws -> Int? {
    guard let text = environment[name] else { return nil }
    guard let value = Int(text), range.contains(value) else {
        throw CUDAError.invalidArgument("\(name)=\(text): expected \(expected)")
    }
    return value
}
