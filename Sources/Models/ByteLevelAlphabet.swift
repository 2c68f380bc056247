/// GPT-2's reversible map between bytes and printable characters, which byte-level BPE
/// tokenizers (GPT-2, Llama 3, Qwen2) use so that every byte is a visible vocabulary symbol:
/// printable Latin-1 bytes stand for themselves, the rest for characters from U+0100 on.
public enum ByteLevelAlphabet {
    /// The character standing for each byte.
    public static let characterForByte: [Character] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var result = [Character](repeating: " ", count: 256)
        var next = 256
        for byte in 0..<256 {
            if printable.contains(byte) {
                result[byte] = Character(Unicode.Scalar(UInt32(byte))!)
            } else {
                result[byte] = Character(Unicode.Scalar(UInt32(next))!)
                next += 1
            }
        }
        printable.removeAll()
        return result
    }()

    /// The byte each alphabet character stands for.
    public static let byteForScalar: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (byte, character) in characterForByte.enumerated() {
            map[character.unicodeScalars.first!] = UInt8(byte)
        }
        return map
    }()

    /// `bytes` spelled in the alphabet.
    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = ""
        for b in bytes { s.append(characterForByte[Int(b)]) }
        return s
    }

    /// The bytes a string of alphabet characters stands for; nil if a character is outside it.
    public static func decode(_ text: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        for scalar in text.unicodeScalars {
            guard let b = byteForScalar[scalar] else { return nil }
            bytes.append(b)
        }
        return bytes
    }
}
