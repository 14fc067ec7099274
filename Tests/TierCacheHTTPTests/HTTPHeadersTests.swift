import Testing
import TierCacheHTTP

@Suite("HTTPHeaders")
struct HTTPHeadersTests {
    @Test("Order, case and repeated names are kept; lookup ignores ASCII case")
    func lookup() {
        var headers = HTTPHeaders([("Content-Type", "text/plain"), ("x-amz-meta-a", "1")])
        headers.add(name: "X-Amz-Meta-A", value: "2")
        #expect(headers.count == 3)
        #expect(headers["CONTENT-type"] == "text/plain")
        #expect(headers["x-AMZ-meta-a"] == "1")
        #expect(headers.values(for: "X-AMZ-META-A") == ["1", "2"])
        #expect(headers.map(\.name) == ["Content-Type", "x-amz-meta-a", "X-Amz-Meta-A"])
        #expect(headers["content-typ"] == nil)
        #expect(headers["content-type-x"] == nil)
        #expect(headers.contains(name: "content-type"))
        #expect(!headers.contains(name: "etag"))
    }

    @Test("replaceOrAdd keeps one field in the first position; remove drops every match")
    func mutation() {
        var headers: HTTPHeaders = ["A": "1", "B": "2", "a": "3"]
        headers.replaceOrAdd(name: "a", value: "new")
        #expect(headers.map(\.name) == ["a", "B"])
        #expect(headers["A"] == "new")
        headers.replaceOrAdd(name: "C", value: "c")
        #expect(headers.map(\.value) == ["new", "2", "c"])
        headers.remove(name: "b")
        #expect(headers.map(\.name) == ["a", "C"])
        let copy = HTTPHeaders(headers.filter { $0.name != "C" })
        #expect(copy.map(\.name) == ["a"])
        #expect(HTTPHeaders().isEmpty)
    }

    @Test("Non-ASCII names compare exactly; only ASCII letters fold")
    func nonASCII() {
        let headers = HTTPHeaders([("X-Ünïcode", "v")])
        #expect(headers["x-Ünïcode"] == "v")
        #expect(headers["x-üNïcode"] == nil)
    }

    @Test("Methods are open: custom tokens compare by raw value")
    func methods() {
        #expect(HTTPMethod.get.rawValue == "GET")
        #expect(HTTPMethod(rawValue: "PUT") == .put)
        #expect(HTTPMethod(rawValue: "put") != .put)
        #expect(Set([HTTPMethod.get, .head, .put, .post, .delete]).count == 5)
    }
}
