@testable import DICOMPixels
import Foundation
import Glibc
import Testing

/// The codec helper processes (issue 22), through the built `dicom-ingest` beside the test bundle.
@Suite struct CodecHelperPoolTests {
    static let description = PixelDescription(rows: 64, columns: 48, bitsAllocated: 16, bitsStored: 12)

    /// A lossless JPEG 2000 codestream of `syntheticFrame`, encoded in-process.
    static func codestream() throws -> (samples: [UInt8], codestream: [UInt8]) {
        let samples = syntheticFrame(description)
        let codestream = try samples.withUnsafeBytes {
            try Codecs.encodeJPEG2000Lossless(
                $0, image: Codecs.Image(width: 48, height: 64, components: 1, bitsStored: 12, isSigned: false),
                decompositions: 3, colorTransform: false)
        }
        return (samples, codestream)
    }

    static func decode(_ pool: CodecHelperPool, _ codestream: [UInt8]) throws(PixelError) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: description.decodedFrameBytes!)
        let written = try codestream.withPixelBytes { (input) throws(PixelError) -> Int in
            let result: Result<Int, PixelError> = output.withUnsafeMutableBytes { target in
                do throws(PixelError) { return .success(try pool.decode(.jpeg2000, input, into: target).1) } catch {
                    return .failure(error)
                }
            }
            return try result.get()
        }
        return Array(output[0..<written])
    }

    @Test func aHelperDecodesWhatTheInProcessCodecDoes() throws {
        let pool = CodecHelperPool(configuration: .standard())
        let (samples, codestream) = try Self.codestream()
        #expect(try Self.decode(pool, codestream) == samples)
        #expect(try Self.decode(pool, codestream) == samples)
        #expect(pool.helpersStarted == 1, "one helper serves frame after frame")
        #expect(pool.idleHelperIDs.count == 1)
    }

    @Test func anInvalidCodestreamFailsItsFrameAndKeepsTheHelper() throws {
        let pool = CodecHelperPool(configuration: .standard())
        let garbage = [UInt8](repeating: 0x5A, count: 300)
        for _ in 0..<2 {
            #expect {
                _ = try Self.decode(pool, garbage)
            } throws: { error in
                (error as? PixelError)?.kind == .decode && (error as? PixelError)?.message.hasPrefix("JPEG 2000") == true
            }
        }
        #expect(pool.helpersStarted == 1)
    }

    @Test func aHelperKilledWhileIdleIsReplacedAndTheFrameStillDecodes() throws {
        let pool = CodecHelperPool(configuration: .standard())
        let (samples, codestream) = try Self.codestream()
        #expect(try Self.decode(pool, codestream) == samples)
        let victim = try #require(pool.idleHelperIDs.first)
        kill(victim, SIGKILL)
        usleep(100_000)
        #expect(try Self.decode(pool, codestream) == samples)
        #expect(pool.helpersStarted == 2)
        #expect(pool.idleHelperIDs != [victim])
    }

    @Test func aHelperThatCannotStartIsTheEnginesFaultNotTheFrames() throws {
        let pool = CodecHelperPool(configuration: .init(executable: "/nonexistent/dicom-ingest"))
        let (_, codestream) = try Self.codestream()
        #expect {
            _ = try Self.decode(pool, codestream)
        } throws: { error in
            (error as? PixelError)?.kind == .helper
                && (error as? PixelError)?.message.contains("/nonexistent/dicom-ingest") == true
        }
    }

    /// `Cpus_allowed_list` of a thread's status, e.g. "0-1".
    static func allowedCPUs(_ statusPath: String) throws -> String {
        let text = try #require(try? String(contentsOfFile: statusPath, encoding: .utf8))
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") })
        return line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces)
    }

    /// A request keeps the calling thread and its helper on one CPU for the call only (`HandOffPin`): the caller's
    /// own mask comes back, and the pin reached the helper's serving thread, its main thread.
    @Test func aRequestPinsItsThreadAndItsHelperForTheCallOnly() throws {
        let pool = CodecHelperPool(configuration: .standard())
        let (samples, codestream) = try Self.codestream()
        let before = try Self.allowedCPUs("/proc/thread-self/status")
        #expect(try Self.decode(pool, codestream) == samples)
        #expect(try Self.allowedCPUs("/proc/thread-self/status") == before)
        let helper = try #require(pool.idleHelperIDs.first)
        let pinned = try Self.allowedCPUs("/proc/\(helper)/task/\(helper)/status")
        #expect(Int(pinned) != nil, "the helper's main thread was pinned to one CPU, not \(pinned)")
    }

    @Test func theMemoryBudgetCoversTheHelpersRegionAndAllowance() {
        let decoded = 512 * 512 * 2
        #expect(CodecHelperPool.frameMemory(encodedBytes: 100_000, decodedBytes: decoded)
            == 100_000 + decoded + CodecHelperPool.decoderAllowance(decodedBytes: decoded))
        #expect(CodecHelperPool.decoderAllowance(decodedBytes: decoded) == 12 * decoded + (48 << 20))
    }
}
