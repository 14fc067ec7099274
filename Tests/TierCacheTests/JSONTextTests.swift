import Foundation
import Testing
@testable import TierCache

@Suite("JSONText")
struct JSONTextTests {
    @Test("quoted strings decode back to the same string, control characters and quotes included")
    func quotedRoundTrips() throws {
        for original in ["plain", "quote \" and backslash \\", "line\nbreak\ttab\u{0}\u{1F}", "ünïcödé ☃ 𝄞", ""] {
            let text = JSONText.quoted(original)
            #expect(!text.unicodeScalars.dropFirst().dropLast().contains { $0.value < 0x20 }, "raw control character in \(text)")
            #expect(try JSONDecoder().decode(String.self, from: Data(text.utf8)) == original)
        }
    }

    @Test("numbers: whole values without a fraction, others exactly, non-finite as 0")
    func numbers() throws {
        #expect(JSONText.number(42) == "42")
        #expect(JSONText.number(-3) == "-3")
        #expect(try JSONDecoder().decode(Double.self, from: Data(JSONText.number(2.5).utf8)) == 2.5)
        #expect(try JSONDecoder().decode(Double.self, from: Data(JSONText.number(1e300).utf8)) == 1e300)
        #expect(JSONText.number(.nan) == "0")
        #expect(JSONText.number(-.infinity) == "0")
    }
}
