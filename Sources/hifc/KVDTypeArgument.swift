import ArgumentParser
import HiFCCore

/// `--kv-dtype auto|bf16|fp8` of the benchmarks (`hifc serve` takes it from the settings table).
extension KVDTypeChoice: ExpressibleByArgument {}
