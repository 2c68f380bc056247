extension String {
    /// The text a C API wrote into `chars`, up to its first NUL, as UTF-8 (invalid bytes replaced).
    init(nulTerminated chars: [CChar]) {
        self.init(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
