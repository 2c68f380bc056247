import ArgumentParser
import HiFCCore

/// `--overlap-steps auto|on|off` of `bench model` (`hifc serve` takes it from the settings table).
extension StepOverlap: ExpressibleByArgument {}
