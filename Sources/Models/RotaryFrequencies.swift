import Foundation

/// The inverse frequencies of rotary position embedding, `headDim / 2` of them, with the config's
/// long-context scaling applied; the backend turns them into angles per position.
public enum RotaryFrequencies {
    /// `1 / theta^(2i / headDim)` for `i` in `0..<headDim/2`, then scaled.
    public static func inverse(headDim: Int, theta: Double, scaling: RopeScaling?) -> [Float] {
        let base = (0..<(headDim / 2)).map { i in 1 / pow(theta, Double(2 * i) / Double(headDim)) }
        switch scaling {
        case nil:
            return base.map(Float.init)
        case .linear(let factor):
            return base.map { Float($0 / factor) }
        case .llama3(let factor, let low, let high, let original):
            // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, and the band
            // between interpolates smoothly.
            let lowWavelength = Double(original) / low
            let highWavelength = Double(original) / high
            return base.map { frequency in
                let wavelength = 2 * Double.pi / frequency
                if wavelength < highWavelength { return Float(frequency) }
                if wavelength > lowWavelength { return Float(frequency / factor) }
                let smooth = (Double(original) / wavelength - low) / (high - low)
                return Float((1 - smooth) * frequency / factor + smooth * frequency)
            }
        }
    }
}
