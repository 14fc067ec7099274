import Foundation
import Testing
import TierCacheCLI

/// The built `tiercache` as a child process: exit codes, stdout bytes, and quiet pipes.
@Suite("tiercache executable")
struct ExecutableTests {
    @Test("--help on every command shows examples and exits 0")
    func help() throws {
        guard executablePath() != nil else {
            print("skipped: the tiercache executable is not built next to the test bundle (swift build --product tiercache)")
            return
        }
        for command in [[], ["put"], ["get"], ["rm"], ["ls"], ["inspect"], ["lifecycle"], ["lifecycle", "apply"],
                        ["lifecycle", "show"], ["warm"], ["stats"], ["dict"], ["dict", "train"]] {
            let outcome = try runChild(command + ["--help"])
            #expect(outcome.code == 0, "\(command) --help")
            #expect(outcome.text.contains("Examples:"), "\(command) --help shows examples")
            #expect(outcome.text.contains("USAGE: tiercache"), "\(command) --help shows usage")
        }
    }

    @Test("exit codes: 0, 3 not found, 4 not an envelope, 64 usage; payload bytes on stdout; nothing drawn on a pipe")
    func exitCodesAndPipes() throws {
        guard executablePath() != nil else {
            print("skipped: the tiercache executable is not built next to the test bundle (swift build --product tiercache)")
            return
        }
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = sampleJSON()
        try writeFile(dir + "/in.json", input)

        let put = try runChild(["put", "--disk", dir + "/c", "x/y", dir + "/in.json"])
        #expect(put.code == 0, "\(put.stderr)")
        #expect(put.text.hasPrefix("put x/y in \(dir)/c: \(input.count) bytes"))
        #expect(put.text.contains("key x/y#v1"))

        let get = try runChild(["get", "--disk", dir + "/c", "x/y"])
        #expect(get.code == 0)
        #expect(get.stdout == input)
        // stderr is a pipe: no progress line, no carriage returns.
        #expect(!get.stderr.contains("\r"))

        let stats = try runChild(["stats", "--disk", dir + "/c"])
        #expect(stats.code == 0)
        #expect(!stats.stderr.contains("\r"))

        let fromStdin = try runChild(["put", "--disk", dir + "/c", "x/stdin", "-", "--codec", "lz4"], stdin: input)
        #expect(fromStdin.code == 0)
        #expect(try runChild(["get", "--disk", dir + "/c", "x/stdin"]).stdout == input)

        let missing = try runChild(["get", "--disk", dir + "/c", "x/none"])
        #expect(missing.code == 3)
        #expect(missing.stderr.hasPrefix("tiercache: error: no entry for x/none#v1"))

        let notEnvelope = try runChild(["inspect", dir + "/in.json"])
        #expect(notEnvelope.code == 4)
        #expect(notEnvelope.stderr.contains("not a valid TierCache envelope"))

        let fromPipe = try runChild(["inspect", "-"], stdin: Array("garbage".utf8))
        #expect(fromPipe.code == 4)

        let usage = try runChild(["put", "--disk", dir + "/c", "x/y"])
        #expect(usage.code == 64)
    }

    @Test("progress is drawn only when stderr is a terminal")
    func progressOnTerminal() async throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/src", withIntermediateDirectories: true)
        for i in 0..<5 { try writeFile(dir + "/src/\(i).json", Array("{\"i\":\(i)}".utf8)) }
        let onTerminal = await run(["warm", "--disk", dir + "/c", "ns", dir + "/src"], terminal: true)
        #expect(onTerminal.code == 0)
        #expect(onTerminal.stderr.contains("warming 5/5"))
        let piped = await run(["warm", "--disk", dir + "/c2", "ns", dir + "/src"], terminal: false)
        #expect(piped.code == 0)
        #expect(piped.stderr.isEmpty)
    }
}
