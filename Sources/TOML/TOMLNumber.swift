/// TOML's integers and floats, from the characters of a bare value (``TOMLReader``).
enum TOMLNumber {
    /// Digits with single `_` between them.
    static func digits(_ text: Substring, allowed: (Unicode.Scalar) -> Bool) -> String? {
        guard let first = text.unicodeScalars.first, let last = text.unicodeScalars.last, first != "_", last != "_", !text.contains("__") else { return nil }
        var out = ""
        for c in text.unicodeScalars where c != "_" {
            guard allowed(c) else { return nil }
            out.unicodeScalars.append(c)
        }
        return out
    }

    static func integer(_ word: String) -> Int? {
        let decimal: (Unicode.Scalar) -> Bool = { ("0"..."9").contains($0) }
        let prefixed: [(String, Int, (Unicode.Scalar) -> Bool)] = [
            ("0x", 16, { $0.properties.isASCIIHexDigit }),
            ("0o", 8, { ("0"..."7").contains($0) }),
            ("0b", 2, { $0 == "0" || $0 == "1" }),
        ]
        for (prefix, radix, allowed) in prefixed where word.hasPrefix(prefix) {
            return digits(word.dropFirst(2), allowed: allowed).flatMap { Int($0, radix: radix) }
        }
        var body = Substring(word)
        var sign = ""
        if let c = body.first, c == "+" || c == "-" { sign = c == "-" ? "-" : ""; body = body.dropFirst() }
        guard let d = digits(body, allowed: decimal), !(d.count > 1 && d.hasPrefix("0")) else { return nil }
        return Int(sign + d)
    }

    static func float(_ word: String) -> Double? {
        var body = Substring(word)
        var negative = false
        if let c = body.first, c == "+" || c == "-" { negative = c == "-"; body = body.dropFirst() }
        if body == "inf" { return negative ? -.infinity : .infinity }
        if body == "nan" { return .nan }
        // digits [. digits] [e [sign] digits], each digit run with single underscores.
        let parts = body.split(separator: "e", maxSplits: 1, omittingEmptySubsequences: false)
            .flatMap { $0.split(separator: "E", maxSplits: 1, omittingEmptySubsequences: false) }
        guard parts.count <= 2, let mantissa = parts.first else { return nil }
        let decimal: (Unicode.Scalar) -> Bool = { ("0"..."9").contains($0) }
        let halves = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = digits(halves[0], allowed: decimal), !(whole.count > 1 && whole.hasPrefix("0")) else { return nil }
        var text = whole
        if halves.count == 2 {
            guard let fraction = digits(halves[1], allowed: decimal) else { return nil }
            text += "." + fraction
        }
        if parts.count == 2 {
            var exponent = parts[1]
            var expSign = ""
            if let c = exponent.first, c == "+" || c == "-" { expSign = String(c); exponent = exponent.dropFirst() }
            guard let e = digits(exponent, allowed: decimal) else { return nil }
            text += "e" + expSign + e
        }
        guard halves.count == 2 || parts.count == 2, let value = Double(text) else { return nil }
        return negative ? -value : value
    }
}
