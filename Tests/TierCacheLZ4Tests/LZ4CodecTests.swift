import CodecTestSupport
import Foundation
import Testing
import TierCache
import TierCacheLZ4

@Suite struct LZ4RoundTripTests {
    static let modes: [LZ4Codec.Mode] = [
        .fast, .fast(acceleration: 8),
        .highCompression(level: 3), .highCompression, .highCompression(level: 12),
    ]

    @Test(arguments: Corpus.files)
    func corpusRoundTrips(file: String) throws {
        let input = try Corpus.read(file)
        for mode in Self.modes {
            let codec = try LZ4Codec(mode: mode)
            #expect(codec.id == .lz4)
            let payload = try #require(try codec.compress(input), "\(mode)")
            #expect(payload.dictionaryID == 0)
            #expect(payload.bytes.count < input.count)
            #expect(try codec.decompress(payload.bytes, uncompressedLength: input.count, dictionaryID: 0) == input, "\(mode)")
        }
    }

    @Test func maximumAccelerationRoundTripsOrDeclines() throws {
        // At the largest acceleration lz4 skips so much that it may find nothing to gain.
        let codec = try LZ4Codec(mode: .fast(acceleration: 65537))
        let input = try Corpus.read("s3-examples.json")
        if let payload = try codec.compress(input) {
            #expect(try codec.decompress(payload.bytes, uncompressedLength: input.count, dictionaryID: 0) == input)
        }
        let zeros = [UInt8](repeating: 0, count: 1 << 16)
        let payload = try #require(try codec.compress(zeros))
        #expect(try codec.decompress(payload.bytes, uncompressedLength: zeros.count, dictionaryID: 0) == zeros)
    }

    @Test func highCompressionIsSmallerThanFast() throws {
        let input = try Corpus.read("s3-examples.json")
        let fast = try #require(try LZ4Codec(mode: .fast).compress(input)).bytes.count
        let faster = try #require(try LZ4Codec(mode: .fast(acceleration: 16)).compress(input)).bytes.count
        let hc = try #require(try LZ4Codec(mode: .highCompression(level: 12)).compress(input)).bytes.count
        #expect(faster > fast)
        #expect(hc < fast)
    }

    @Test func emptyAndOneByteAreStoredRaw() throws {
        for mode in Self.modes {
            let codec = try LZ4Codec(configuration: .init(mode: mode, minimumInputSize: 0))
            #expect(try codec.compress([]) == nil)
            #expect(try codec.compress([0x41]) == nil)
        }
    }

    @Test func thresholdBoundary() throws {
        let threshold = 100
        let codec = try LZ4Codec(configuration: .init(minimumInputSize: threshold))
        #expect(try codec.compress([UInt8](repeating: 0x61, count: threshold - 1)) == nil)
        for count in [threshold, threshold + 1] {
            let input = [UInt8](repeating: 0x61, count: count)
            let payload = try #require(try codec.compress(input))
            #expect(try codec.decompress(payload.bytes, uncompressedLength: count, dictionaryID: 0) == input)
        }
    }

    @Test func defaultThresholdApplies() throws {
        let codec = LZ4Codec.lz4
        #expect(try codec.compress(try jsonPayload(LZ4Codec.defaultMinimumInputSize - 1)) == nil)
        #expect(try codec.compress(try jsonPayload(4096)) != nil)
    }

    @Test func incompressibleInputIsStoredRaw() throws {
        var rng = SeededGenerator(seed: 11)
        let noise = rng.bytes(20_000)
        #expect(try LZ4Codec().compress(noise) == nil)
        #expect(try LZ4Codec(mode: .highCompression).compress(noise) == nil)
    }

    @Test func smallRecordsRoundTrip() throws {
        let codec = try LZ4Codec(configuration: .init(minimumInputSize: 0))
        let hc = try LZ4Codec(configuration: .init(mode: .highCompression, minimumInputSize: 0))
        var compressed = 0
        for record in try Corpus.endpointRecords().prefix(200) {
            for codec in [codec, hc] {
                guard let payload = try codec.compress(record) else { continue }
                compressed += 1
                #expect(try codec.decompress(payload.bytes, uncompressedLength: record.count, dictionaryID: 0) == record)
            }
        }
        #expect(compressed > 100)
    }

    @Test func invalidConfigurationsAreRejected() {
        for configuration in [
            LZ4Codec.Configuration(mode: .fast(acceleration: 0)),
            LZ4Codec.Configuration(mode: .fast(acceleration: 65538)),
            LZ4Codec.Configuration(mode: .highCompression(level: 2)),
            LZ4Codec.Configuration(mode: .highCompression(level: 13)),
            LZ4Codec.Configuration(minimumInputSize: -1),
            LZ4Codec.Configuration(maximumDecompressedSize: 0),
            LZ4Codec.Configuration(maximumDecompressedSize: Int.max),
        ] {
            #expect {
                _ = try LZ4Codec(configuration: configuration)
            } throws: { ($0 as? TierCacheError)?.code == .invalidConfiguration }
        }
    }
}

@Suite struct LZ4LimitTests {
    @Test("a declared length above 255 times the block is refused before allocating; the most compressible input still round-trips")
    func declaredLengthAboveTheFormatsRatio() throws {
        let codec = try LZ4Codec()
        // Zeros compress as well as LZ4 can: close to, never above, 255 to 1.
        let zeros = [UInt8](repeating: 0, count: 8 << 20)
        let block = try #require(try codec.compress(zeros)).bytes
        #expect(block.count * LZ4Codec.maximumRatio >= zeros.count)
        #expect(try codec.decompress(block, uncompressedLength: zeros.count, dictionaryID: 0) == zeros)
        for declared in [block.count * 255 + 1, block.count * 1000, LZ4Codec.defaultMaximumDecompressedSize] {
            #expect {
                _ = try codec.decompress(block, uncompressedLength: declared, dictionaryID: 0)
            } throws: { error in
                let error = error as? TierCacheError
                return error?.code == .sizeLimitExceeded && error?.message.contains("255 times") == true
            }
        }
        // A tiny block declaring a large (under the ceiling) length: the old allocate-then-fail path.
        let tiny = try #require(try LZ4Codec(configuration: .init(minimumInputSize: 0)).compress([UInt8](repeating: 7, count: 300))).bytes
        #expect {
            _ = try codec.decompress(tiny, uncompressedLength: 200 << 20, dictionaryID: 0)
        } throws: { ($0 as? TierCacheError)?.code == .sizeLimitExceeded }
        #expect(try codec.decompress(tiny, uncompressedLength: 300, dictionaryID: 0) == [UInt8](repeating: 7, count: 300))
    }

    @Test func declaredLengthAboveCeilingIsRejectedBeforeAllocating() throws {
        try CodecLimitChecks.declaredLengthAboveCeiling(LZ4Codec(), ceiling: LZ4Codec.defaultMaximumDecompressedSize)
    }

    @Test func bombIsRejectedByAConfiguredCeiling() throws {
        try CodecLimitChecks.bombRejected(writer: LZ4Codec(), reader: LZ4Codec(configuration: .init(maximumDecompressedSize: 1 << 20)),
                                          compressedAtMost: (16 << 20) / 100)
    }

    @Test func wrongDeclaredLengthsAreTypedErrors() throws {
        let input = try Corpus.read("partitions.json")
        let codec = try LZ4Codec()
        let block = try #require(try codec.compress(input)).bytes
        for declared in [0, 1, input.count - 1, input.count + 1, input.count * 2] {
            #expect {
                _ = try codec.decompress(block, uncompressedLength: declared, dictionaryID: 0)
            } throws: { ($0 as? TierCacheError)?.code == .codec }
        }
    }

    @Test func anyDictionaryIsNotLoaded() throws {
        let input = try Corpus.read("partitions.json")
        let codec = try LZ4Codec()
        let block = try #require(try codec.compress(input)).bytes
        #expect {
            _ = try codec.decompress(block, uncompressedLength: input.count, dictionaryID: 42)
        } throws: { ($0 as? TierCacheError)?.code == .dictionaryNotLoaded }
    }

    @Test func truncatedBlocksAreTypedErrors() throws {
        let input = try Corpus.read("partitions.json")
        let codec = try LZ4Codec()
        let block = try #require(try codec.compress(input)).bytes
        for length in 0..<block.count {
            do {
                _ = try codec.decompress(Array(block.prefix(length)), uncompressedLength: input.count, dictionaryID: 0)
                Issue.record("a \(length)-byte prefix of a \(block.count)-byte block decompressed")
            } catch where input.count > length * LZ4Codec.maximumRatio {
                // A prefix too short to hold the declared length is refused before decompressing.
                #expect(error.code == .sizeLimitExceeded)
            } catch {
                #expect(error.code == .codec)
                #expect(error.message.contains("LZ4_decompress_safe") || error.message.contains("declares"))
            }
        }
    }
}

@Suite struct LZ4FuzzTests {
    @Test func randomBytesOnlyThrowTypedErrors() throws {
        var rng = SeededGenerator(seed: 0x4C5A)
        let codec = try LZ4Codec(configuration: .init(maximumDecompressedSize: 1 << 20))
        var thrown = 0
        for _ in 0..<5000 {
            let input = rng.bytes(Int.random(in: 0...256, using: &rng))
            let declared = Int.random(in: 0...(2 << 20), using: &rng)
            do {
                let output = try codec.decompress(input, uncompressedLength: declared, dictionaryID: 0)
                #expect(output.count == declared)
            } catch {
                #expect([.codec, .sizeLimitExceeded].contains(error.code), "\(error)")
                thrown += 1
            }
        }
        #expect(thrown > 0)
    }

    @Test func mutatedBlocksOnlyThrowTypedErrors() throws {
        var rng = SeededGenerator(seed: 0xB10C)
        let fast = try LZ4Codec(configuration: .init(minimumInputSize: 0))
        let hc = try LZ4Codec(configuration: .init(mode: .highCompression, minimumInputSize: 0))
        var inputs = try Corpus.endpointRecords().filter { $0.count > 200 }.prefix(20).map { $0 }
        inputs.append(try Corpus.read("partitions.json"))
        var blocks: [(block: [UInt8], length: Int)] = []
        for input in inputs {
            for codec in [fast, hc] {
                blocks.append((try #require(try codec.compress(input)).bytes, input.count))
            }
        }
        var thrown = 0
        for _ in 0..<6000 {
            let pick = blocks[Int.random(in: 0..<blocks.count, using: &rng)]
            let mutated = mutate(pick.block, using: &rng)
            let declared = Bool.random(using: &rng) ? pick.length : max(0, pick.length + Int.random(in: -64...64, using: &rng))
            do {
                let output = try fast.decompress(mutated, uncompressedLength: declared, dictionaryID: 0)
                #expect(output.count == declared)
            } catch {
                #expect(error.code == (declared > mutated.count * LZ4Codec.maximumRatio ? .sizeLimitExceeded : .codec), "\(error)")
                thrown += 1
            }
        }
        #expect(thrown > 3000)
    }
}

@Suite struct LZ4ConcurrencyTests {
    @Test func manyTasksShareStates() async throws {
        let records = try Corpus.endpointRecords()
        let codecs = [try LZ4Codec(), try LZ4Codec(mode: .fast(acceleration: 4)), try LZ4Codec(mode: .highCompression)]
        let inputs = [try Corpus.read("partitions.json"), try Corpus.read("s3-examples.json")] + records.prefix(30)
        let failures = try await withThrowingTaskGroup(of: Int.self) { group in
            for task in 0..<64 {
                group.addTask {
                    var failures = 0
                    for round in 0..<40 {
                        let codec = codecs[(task + round) % codecs.count]
                        let input = inputs[(task * 7 + round) % inputs.count]
                        guard let payload = try codec.compress(input) else { continue }
                        let output = try codec.decompress(payload.bytes, uncompressedLength: input.count, dictionaryID: 0)
                        if output != input { failures += 1 }
                    }
                    return failures
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(failures == 0)
    }
}
